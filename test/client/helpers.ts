import pino from "pino";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { RegistryGrpcServer } from "../../src/server/grpc-server.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { RegistryWatch } from "../../src/client/registry-watch.js";
import type { RegistryWatchEvent } from "../../src/client/watch-events.js";
import { ServerCredentials } from "@grpc/grpc-js";
import { startHarness, type Harness } from "../support/registry-harness.js";
import type { TestPki } from "../support/test-pki.js";

/** A port that was free a moment ago (for restarting a server on the same port). */
export { freePort } from "../support/etcd-process.js";

/**
 * Something to await: resolves the first time `test` holds over an
 * append-only list of items, or fails after `timeoutMs` naming `what`.
 */
export class Log<T> {
  readonly items: T[] = [];
  private readonly waiters = new Set<() => void>();

  push(item: T): void {
    this.items.push(item);
    for (const wake of [...this.waiters]) wake();
  }

  /** Resolves with the first item (from index `from`) matching `match`. */
  async find(match: (item: T) => boolean, what: string, timeoutMs = 5000, from = 0): Promise<T> {
    const found = (): T | undefined => this.items.slice(from).find(match);
    await this.until(() => found() !== undefined, what, timeoutMs);
    return found() as T;
  }

  /** Resolves once `test(items)` holds. */
  until(test: (items: readonly T[]) => boolean, what: string, timeoutMs = 5000): Promise<void> {
    if (test(this.items)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(this.items.slice(-3))}`));
      }, timeoutMs);
      const check = (): void => {
        if (!test(this.items)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }
}

/** Consumes a watch in the background into a Log (the iteration error, if any, in `error`). */
export function drain(watch: RegistryWatch): Log<RegistryWatchEvent> & { error?: unknown; done: Promise<void> } {
  const log = new Log<RegistryWatchEvent>() as Log<RegistryWatchEvent> & { error?: unknown; done: Promise<void> };
  log.done = (async () => {
    try {
      for await (const event of watch) log.push(event);
    } catch (err) {
      log.error = err;
    }
  })();
  return log;
}

/** The revisions of the change events (not snapshot, reset, bookmark, probe). */
export function changeRevisions(events: readonly RegistryWatchEvent[]): number[] {
  return events
    .filter((e) => e.type === "instanceRegistered" || e.type === "instanceRemoved" || e.type.startsWith("healthCheck"))
    .map((e) => e.revision);
}

/** from..to inclusive. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** A registry (core + gRPC server) running in this process on a port of the test's choosing. */
export interface LocalRegistry {
  readonly address: string;
  readonly registry: ServiceRegistry;
  readonly server: RegistryGrpcServer;
  /** Graceful stop, as SIGTERM does it: watch streams end with UNAVAILABLE. */
  close(): Promise<void>;
}

/**
 * Starts a registry on `port` with a memory store, or a SQLite store in
 * `dataDir`, so a test can stop it and start another on the same port (or
 * the same data on another port) in milliseconds rather than a process start.
 */
export async function startLocalRegistry(port: number, dataDir?: string, key = "test-registration-key-0123456789"): Promise<LocalRegistry> {
  const logger = pino({ level: "silent" });
  const registry = new ServiceRegistry({
    healthChecks: false,
    logger,
    ...(dataDir ? { store: new SqliteStore({ dataDir }) } : {}),
  });
  await registry.start();
  const server = new RegistryGrpcServer({ registry, keys: new RegistrationKeys([key]), logger, shutdownGraceMs: 200 });
  await server.listen("127.0.0.1", port);
  let closed: Promise<void> | undefined;
  return {
    address: `127.0.0.1:${port}`,
    registry,
    server,
    close() {
      closed ??= (async () => {
        await server.shutdown();
        await registry.close();
      })();
      return closed;
    },
  };
}

/** A harness whose gRPC server requires TLS with a client certificate from `pki`'s CA. */
export function startMtlsHarness(pki: TestPki): Promise<Harness> {
  return startHarness({
    server: {
      credentials: ServerCredentials.createSsl(
        Buffer.from(pki.ca.cert),
        [{ cert_chain: Buffer.from(pki.server.cert), private_key: Buffer.from(pki.server.key) }],
        true,
      ),
    },
  });
}
