import { RegistryClientError } from "../../src/client/client-error.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import type { RegistryWatchEvent } from "../../src/client/watch-events.js";
import { Waiter } from "../support/waiter.js";

/** Service type every writer registers and every watcher watches. */
export const FAULT_RUN_TYPE = "faultrun";
/** Metadata key naming the write operation that registered an instance. */
export const OP_KEY = "op";

/** One write a client made, as the client saw it end (`at`), when it was sent (`startedAt`), and the deadline it was sent with. */
export type WriteRecord =
  | { readonly op: string; readonly kind: "register" | "unregister"; readonly id: string; readonly revision: number; readonly startedAt: number; readonly at: number; readonly deadlineMs: number; readonly ok: true }
  | { readonly op: string; readonly kind: "register" | "unregister"; readonly id?: string; readonly code: string; readonly startedAt: number; readonly at: number; readonly deadlineMs: number; readonly ok: false };

/**
 * Writers that register instances and unregister the oldest of their own,
 * through the SDK with every replica's address, recording how each call
 * ended; one writer per deadline given. A failed unregister is retried later; NOT_FOUND then means an earlier
 * attempt was committed after all.
 */
export class Writers {
  readonly records: WriteRecord[] = [];
  private readonly recorded = new Waiter();
  private running = true;
  private paused = false;
  private readonly resumed = new Waiter();
  private readonly loops: Promise<void>[];
  private readonly clients: RegistryClient[];

  constructor(addresses: readonly string[], key: string, deadlinesMs: readonly number[]) {
    this.clients = deadlinesMs.map((deadlineMs) => new RegistryClient({ addresses, auth: { key }, deadlineMs }));
    this.loops = this.clients.map((c, i) => this.run(c, `w${i}`, deadlinesMs[i]!));
  }

  private async run(client: RegistryClient, name: string, deadlineMs: number): Promise<void> {
    const mine: string[] = [];
    let seq = 0;
    let port = 10_000;
    while (this.running) {
      if (this.paused) {
        await this.resumed.until(() => !this.paused || !this.running, "writes to resume", 3_600_000);
        continue;
      }
      const op = `${name}-${seq++}`;
      const startedAt = Date.now();
      if (mine.length >= 5) {
        const id = mine[0]!;
        try {
          const removed = await client.unregister(id);
          this.records.push({ op, kind: "unregister", id, revision: removed.revision, startedAt, at: Date.now(), deadlineMs, ok: true });
          mine.shift();
        } catch (err) {
          const code = codeName(err);
          this.records.push({ op, kind: "unregister", id, code, startedAt, at: Date.now(), deadlineMs, ok: false });
          if (code === "NOT_FOUND") mine.shift(); // an earlier attempt removed it
        }
      } else {
        port = port >= 60_000 ? 10_000 : port + 1;
        try {
          const r = await client.register({ serviceType: FAULT_RUN_TYPE, host: "127.0.0.1", port, metadata: { [OP_KEY]: op } });
          this.records.push({ op, kind: "register", id: r.id, revision: r.instance.revision, startedAt, at: Date.now(), deadlineMs, ok: true });
          mine.push(r.id);
        } catch (err) {
          this.records.push({ op, kind: "register", code: codeName(err), startedAt, at: Date.now(), deadlineMs, ok: false });
        }
      }
      this.recorded.notify();
      await pause(20);
    }
  }

  /** Stops sending new writes until `resume()` (a quiet period). */
  quiet(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.resumed.notify();
  }

  /** Resolves once some write started after `since` was acknowledged. */
  async ackAfter(since: number, timeoutMs: number): Promise<number> {
    const ack = () => this.records.find((r) => r.ok && r.at > since);
    await this.recorded.until(() => ack() !== undefined, "a write to be acknowledged", timeoutMs);
    return ack()!.at;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.resumed.notify();
    await Promise.all(this.loops);
    for (const c of this.clients) c.close();
  }
}

/** A watcher's log: every event, and every stream it lost (the SDK resumes by itself). */
export interface WatchLog {
  readonly name: string;
  readonly events: RegistryWatchEvent[];
  readonly disconnects: { readonly at: number; readonly code: string }[];
}

/** SDK watchers on every replica's address, each logging what it receives. */
export class Watchers {
  readonly logs: WatchLog[] = [];
  private readonly received = new Waiter();
  private readonly clients: RegistryClient[] = [];
  private readonly done: Promise<void>[] = [];
  private readonly streams: { close(): void }[] = [];

  constructor(addresses: readonly string[], key: string, count: number, idleTimeoutMs: number) {
    for (let i = 0; i < count; i++) {
      // Each watcher prefers a different replica, so every replica carries streams.
      const order = [...addresses.slice(i % addresses.length), ...addresses.slice(0, i % addresses.length)];
      const client = new RegistryClient({ addresses: order, auth: { key } });
      const log: WatchLog = { name: `watcher${i}`, events: [], disconnects: [] };
      const stream = client.watch({
        serviceType: FAULT_RUN_TYPE,
        idleTimeoutMs,
        onDisconnect: ({ error }) => log.disconnects.push({ at: Date.now(), code: error.codeName }),
      });
      this.clients.push(client);
      this.streams.push(stream);
      this.logs.push(log);
      this.done.push(
        (async () => {
          try {
            for await (const event of stream) {
              log.events.push(event);
              this.received.notify();
            }
          } catch {
            // closed
          }
        })(),
      );
    }
  }

  /** Resolves once every watcher has seen revision `revision` (any event at or past it). */
  reached(revision: number, timeoutMs: number): Promise<void> {
    const test = () => this.logs.every((l) => l.events.some((e) => e.revision >= revision));
    return this.received.until(test, `every watcher at revision ${revision}`, timeoutMs);
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.close();
    await Promise.all(this.done);
    for (const c of this.clients) c.close();
  }
}

function codeName(err: unknown): string {
  return err instanceof RegistryClientError ? err.codeName : String((err as Error).message ?? err);
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
