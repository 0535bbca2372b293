import { readFileSync } from "node:fs";
import { credentials } from "@grpc/grpc-js";
import type { EtcdCluster } from "../support/etcd-cluster.js";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.js";
import { Waiter } from "../support/waiter.js";
import { check, healthClient } from "../support/health-client.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

/** What a replica answers on grpc.health.v1 Check, or "unreachable" when it does not answer in time. */
export type ReplicaState = "SERVING" | "NOT_SERVING" | "unreachable";

/** One registry replica whose every link to etcd runs through a fault proxy of its own. */
export class Replica {
  private proc: ServerProcess | undefined;
  private port = 0;
  private healthConn: ReturnType<typeof healthClient> | undefined;

  private constructor(
    readonly name: string,
    private readonly proxies: readonly FaultProxy[],
    private readonly env: Record<string, string>,
  ) {}

  static async start(name: string, etcd: EtcdCluster, env: Record<string, string>): Promise<Replica> {
    const proxies = await Promise.all(
      etcd.members.map((m) => {
        const { hostname, port } = new URL(m.endpoint);
        return startFaultProxy(hostname, Number(port));
      }),
    );
    const replica = new Replica(name, proxies, env);
    await replica.start();
    return replica;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.child.pid;
  }

  /** Starts the process (again, on the same port after the first start); resolves once it serves. */
  async start(): Promise<void> {
    this.proc = await startServerProcess({
      ...this.env,
      STORE: "etcd",
      ETCD_ENDPOINTS: this.proxies.map((p) => p.url).join(","),
      PORT: String(this.port),
    });
    this.port = this.proc.port;
    this.healthConn ??= healthClient(this.address, credentials.createInsecure());
  }

  /** Sends `signal` and waits for the process to exit. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    proc.kill(signal);
    await proc.exited;
    this.proc = undefined;
  }

  freeze(): void {
    this.proc?.kill("SIGSTOP");
  }

  thaw(): void {
    this.proc?.kill("SIGCONT");
  }

  /** Drops every byte between this replica and etcd, both ways, without a reset. */
  cutFromEtcd(): void {
    for (const p of this.proxies) p.blackhole();
  }

  healLinkToEtcd(): void {
    for (const p of this.proxies) p.heal();
  }

  /** Resident memory of the process, MiB (Linux /proc). */
  rssMiB(): number | undefined {
    if (this.pid === undefined) return undefined;
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, "utf8"));
      return match ? Number(match[1]) / 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /** grpc.health.v1 Check with a short deadline. */
  async state(deadlineMs: number): Promise<ReplicaState> {
    const client = this.healthConn;
    if (!client || !this.proc) return "unreachable";
    return Promise.race([
      check(client).then(
        (s) => (s === "SERVING" ? "SERVING" : "NOT_SERVING") as ReplicaState,
        () => "unreachable" as const,
      ),
      new Promise<ReplicaState>((resolve) => setTimeout(() => resolve("unreachable"), deadlineMs).unref()),
    ]);
  }

  output(): string {
    return this.proc?.output() ?? "";
  }

  async close(): Promise<void> {
    this.thaw();
    await this.stop("SIGKILL");
    this.healthConn?.close();
    await Promise.all(this.proxies.map((p) => p.close()));
  }
}

/** A transition of one replica's state, as the health monitor saw it. */
export interface StateChange {
  readonly replica: string;
  readonly at: number;
  readonly state: ReplicaState;
}

/**
 * Asks every replica for its health every `intervalMs` and records each
 * change of answer, so detection and recovery times come from what a load
 * balancer checking health would see.
 */
export class HealthMonitor {
  readonly changes: StateChange[] = [];
  private readonly last = new Map<string, ReplicaState>();
  private readonly rounds = new Waiter();
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly replicas: readonly Replica[],
    private readonly intervalMs = 100,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = Date.now();
      await Promise.all(
        this.replicas.map(async (r) => {
          const state = await r.state(Math.max(200, this.intervalMs * 3));
          if (this.last.get(r.name) === state) return;
          this.last.set(r.name, state);
          this.changes.push({ replica: r.name, at: Date.now(), state });
        }),
      );
      this.rounds.notify();
      await new Promise((r) => setTimeout(r, Math.max(0, this.intervalMs - (Date.now() - started))));
    }
  }

  state(replica: string): ReplicaState | undefined {
    return this.last.get(replica);
  }

  /** Resolves once `test` holds after a round of checks; rejects after `timeoutMs`. */
  until(test: () => boolean, what: string, timeoutMs: number): Promise<void> {
    return this.rounds.until(test, what, timeoutMs);
  }

  /** Resolves once every replica answers SERVING. */
  allServing(timeoutMs: number): Promise<void> {
    return this.until(() => this.replicas.every((r) => this.last.get(r.name) === "SERVING"), "every replica SERVING", timeoutMs);
  }

  /** First change of `replica` to one of `states` at or after `since`. */
  firstAfter(since: number, replica: string, states: readonly ReplicaState[]): StateChange | undefined {
    return this.changes.find((c) => c.at >= since && c.replica === replica && states.includes(c.state));
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
