/**
 * Bench-only registry process: builds ServiceRegistry + RegistryGrpcServer the
 * way `startServer` does (same logger, same stores), listens on 127.0.0.1:0,
 * and answers the orchestrator's commands over IPC: seed instances through
 * the library API, count probes, sample probe lag, collect garbage, stop.
 *
 * argv[2]: a JSON {@link RegistryServerConfig}.
 */
import { performance } from "node:perf_hooks";
import { createLogger } from "../../src/logging/logger.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { RegistryGrpcServer } from "../../src/server/grpc-server.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { heapSamplingCommands } from "../lib/heap-sampling.js";
import { emit, serveIpc } from "../lib/ipc.js";
import { BENCH_KEY, BENCH_METADATA } from "../lib/workload.js";

/** How the orchestrator wants the registry configured. */
export interface RegistryServerConfig {
  readonly store: "memory" | "sqlite";
  readonly sync?: "normal" | "full";
  readonly dataDir?: string;
  readonly healthChecks: boolean;
  readonly healthCheckInterval?: number;
  readonly healthCheckTTL?: number;
  readonly healthCheckMaxRequests?: number;
  readonly healthCheckBatchSize?: number;
  /** pino level; default "info", the server's default (one line per registration, to /dev/null). */
  readonly logLevel?: string;
}

/** A block of instances to register directly through the library API. */
export interface SeedBlock {
  readonly serviceType: string;
  readonly count: number;
  /** Every instance of the block on this host:port (probe targets), or distinct fake addresses when omitted. */
  readonly host?: string;
  readonly port?: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as RegistryServerConfig;
const logger = createLogger(config.logLevel ?? "info");
const store =
  config.store === "sqlite"
    ? new SqliteStore({ dataDir: config.dataDir ?? "./data", sync: config.sync ?? "normal" })
    : new MemoryStore();
const registry = new ServiceRegistry({
  store,
  logger,
  healthChecks: config.healthChecks,
  ...(config.healthCheckInterval ? { healthCheckInterval: config.healthCheckInterval } : {}),
  ...(config.healthCheckTTL ? { healthCheckTTL: config.healthCheckTTL } : {}),
  ...(config.healthCheckMaxRequests ? { healthCheckMaxRequests: config.healthCheckMaxRequests } : {}),
  ...(config.healthCheckBatchSize ? { healthCheckBatchSize: config.healthCheckBatchSize } : {}),
});

const probes = { passed: 0, failed: 0 };
if (config.healthChecks) {
  registry.on("healthCheckPassed", () => probes.passed++);
  registry.on("healthCheckFailed", () => probes.failed++);
}

const startedAt = performance.now();
await registry.start();
const startMs = performance.now() - startedAt;
const grpc = new RegistryGrpcServer({ registry, keys: new RegistrationKeys([BENCH_KEY]), logger });
const port = await grpc.listen("127.0.0.1", 0);

let seeded = 0;
let lagTimer: NodeJS.Timeout | undefined;
let lagWindows: ReturnType<ServiceRegistry["probeLag"]>[] = [];

serveIpc({
  ...heapSamplingCommands,
  /** Registers instances in chunks (one SQLite commit group per chunk). */
  async seed(blocks: SeedBlock[]) {
    const t0 = performance.now();
    let n = 0;
    for (const block of blocks) {
      for (let i = 0; i < block.count; i += 1000) {
        const chunk: Promise<unknown>[] = [];
        for (let j = i; j < Math.min(block.count, i + 1000); j++) {
          const k = seeded++;
          chunk.push(
            registry.register({
              serviceType: block.serviceType,
              // Joined, not a template literal: a flat string, as gRPC decoding yields.
              host: block.host ?? [10, (k >> 16) & 255, (k >> 8) & 255, k & 255].join("."),
              port: block.port ?? 8000 + (k % 1000),
              metadata: BENCH_METADATA,
            }),
          );
        }
        await Promise.all(chunk);
        n += chunk.length;
      }
    }
    return { registered: n, ms: performance.now() - t0, size: registry.size };
  },
  probeCounters: () => ({ ...probes, probes: probes.passed + probes.failed }),
  /** SQLite transactions so far, and registry revision: their ratio is the mean commit group size. */
  storeStats: () => ({ commitGroups: store instanceof SqliteStore ? store.commitGroups : 0, revision: registry.revision }),
  /** Samples the registry's own probe-lag statistic (last 1024 probes) every `periodMs`. */
  startLagSampling({ periodMs }: { periodMs: number }) {
    lagWindows = [];
    lagTimer = setInterval(() => lagWindows.push(registry.probeLag()), periodMs);
  },
  stopLagSampling() {
    clearInterval(lagTimer);
    return lagWindows;
  },
  gc() {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    return { ...process.memoryUsage(), size: registry.size, gcExposed: gc !== undefined };
  },
  async stop() {
    await grpc.shutdown();
    await registry.close();
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { port, startMs, uptimeMs: performance.now(), instances: registry.size });
