import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A request from the orchestrator to a bench child process. */
interface IpcRequest {
  readonly id: number;
  readonly cmd: string;
  readonly args?: unknown;
}

/** A child's answer to one request, or an unsolicited event. */
type IpcMessage =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }
  | { readonly event: string; readonly data: unknown };

/** Command handlers of a child process; each gets the request's `args`. */
export type Handlers = Record<string, (args: any) => unknown>;

/**
 * Child side: answers the orchestrator's requests with `handlers` and exits
 * when the orchestrator goes away, so no bench process outlives a run.
 */
export function serveIpc(handlers: Handlers): void {
  if (!process.send) throw new Error("this bench process must be started by bench/run.ts (it needs an IPC channel)");
  process.on("message", (message: IpcRequest) => {
    const handler = handlers[message.cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${message.cmd}`);
        return handler(message.args);
      })
      .then(
        (result) => process.send?.({ id: message.id, ok: true, result: result ?? null }),
        (err: unknown) => process.send?.({ id: message.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
      );
  });
  process.on("disconnect", () => process.exit(0));
}

/** Child side: sends an event the orchestrator did not ask for (ready, progress). */
export function emit(event: string, data: unknown = null): void {
  process.send?.({ event, data });
}

/** Options of {@link BenchChild.start}. */
export interface ChildOptions {
  /** Extra node flags (e.g. `--cpu-prof`, `--expose-gc`), after `--import tsx`. */
  readonly nodeFlags?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Where the child's stdout goes; default ignored (the registry's pino logs are written, then dropped). */
  readonly stdout?: "ignore" | "inherit";
  /** How long to wait for the child's `ready` event. Default 30 s. */
  readonly readyTimeoutMs?: number;
}

/**
 * Orchestrator side: one bench process (`node --import tsx <file>`, a single
 * PID, so its CPU time in /proc is the process's own), driven over IPC.
 */
export class BenchChild<Ready = unknown> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, ((data: unknown) => void)[]>();
  readonly exited: Promise<number | string>;
  /** Resolves with the child's `ready` event data. */
  readonly ready: Promise<Ready>;
  /** Milliseconds from fork to the `ready` event. */
  readyAfterMs = 0;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readyTimeoutMs: number,
  ) {
    const forkedAt = performance.now();
    child.on("message", (m: IpcMessage) => {
      if ("event" in m) {
        for (const l of this.listeners.get(m.event) ?? []) l(m.data);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${name}: ${m.error}`));
    });
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
    void this.exited.then((code) => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${code}) during a request`));
      this.pending.clear();
    });
    this.ready = new Promise<Ready>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready within ${readyTimeoutMs} ms`)), readyTimeoutMs);
      this.on("ready", (data) => {
        clearTimeout(timer);
        this.readyAfterMs = performance.now() - forkedAt;
        resolve(data as Ready);
      });
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready`));
      });
    });
    this.ready.catch(() => undefined);
  }

  /** Forks `file` (relative to bench/) with `args` as its argv. */
  static start<R>(name: string, file: string, args: readonly string[] = [], options: ChildOptions = {}): BenchChild<R> {
    const path = fileURLToPath(new URL(`../${file}`, import.meta.url));
    const child = fork(path, [...args], {
      execArgv: ["--import", "tsx", ...(options.nodeFlags ?? [])],
      env: options.env ?? process.env,
      stdio: ["ignore", options.stdout ?? "ignore", "inherit", "ipc"],
      serialization: "json",
    });
    const handle = new BenchChild<R>(name, child, options.readyTimeoutMs ?? 30_000);
    liveChildren.add(handle);
    void handle.exited.then(() => liveChildren.delete(handle));
    return handle;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  on(event: string, listener: (data: unknown) => void): void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
  }

  /** Sends a command and resolves with the child's result. */
  request<T = unknown>(cmd: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${cmd} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, cmd, args });
    });
  }

  /** Asks the child to stop (its `stop` handler), then kills it if it lingers. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await this.request("stop", undefined, timeoutMs).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const liveChildren = new Set<BenchChild>();
const liveProcesses = new Set<ChildProcess>();

/** Has {@link killAllChildren} kill `child` too: a process the bench started without IPC. */
export function trackProcess(child: ChildProcess): void {
  liveProcesses.add(child);
  child.once("close", () => liveProcesses.delete(child));
}

/** Kills every bench child still running (on an orchestrator failure). */
export function killAllChildren(): void {
  for (const c of liveChildren) c.child.kill("SIGKILL");
  for (const c of liveProcesses) c.kill("SIGKILL");
}
