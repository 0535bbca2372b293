/**
 * Bench registry process: starts the composition `serve` starts
 * (`startServer`: commit observer, metrics on an HTTP port of its own,
 * serving state, the shared gRPC/HTTP port, connection limits, auth
 * limiter), with `serve`'s defaults except where a scenario needs otherwise
 * (below), on 127.0.0.1:0, and answers the orchestrator's commands over IPC:
 * seed instances through the library API, count probes, sample probe lag,
 * collect garbage, stop.
 *
 * The registry's code comes from `config.build` when given: the compiled
 * tree `npm run build` makes, which is what docs/operations.md deploys.
 * `npm run bench` always gives it. Without it the sources are loaded
 * through tsx, as `npm start` runs them: tsx compiles with esbuild's
 * keepNames, which names every function a call creates (a property
 * definition each time), so per-call figures read higher there than
 * deployed.
 *
 * argv[2]: a JSON {@link RegistryServerConfig}.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import type { Config } from "../../src/config/settings.js";
import type { ServiceRegistry } from "../../src/registry/service-registry.js";
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
  /** MAX_WATCH_STREAMS_PER_CONNECTION, for a watch client holding more streams on its one connection than serve's default allows. */
  readonly maxWatchStreamsPerConnection?: number;
  /** MAX_XDS_STREAMS, for a scale run holding more xDS streams (warm-up ones included) than serve's default allows. */
  readonly maxXdsStreams?: number;
  /** A compiled tree (`dist/`, as `npm run build` makes it) to load the registry from; default the sources, through tsx. */
  readonly build?: string;
}

/** A block of instances to register directly through the library API. */
export interface SeedBlock {
  readonly serviceType: string;
  readonly count: number;
  /** Every instance of the block on this host:port (probe targets), or distinct fake addresses when omitted. */
  readonly host?: string;
  readonly port?: number;
}

const bench = JSON.parse(process.argv[2] ?? "{}") as RegistryServerConfig;

/** One of the registry's modules (`path` under src/), from the compiled tree if the config names one. */
async function registryModule<T>(path: string): Promise<T> {
  const url = bench.build === undefined ? new URL(`../../src/${path}`, import.meta.url) : pathToFileURL(join(bench.build, "src", path));
  return (await import(url.href)) as T;
}
const { startServer } = await registryModule<typeof import("../../src/app/start-server.js")>("app/start-server.js");
const { loadConfig } = await registryModule<typeof import("../../src/config/load-config.js")>("config/load-config.js");
const { createLogger } = await registryModule<typeof import("../../src/logging/logger.js")>("logging/logger.js");
const { createStore } = await registryModule<typeof import("../../src/store/create-store.js")>("store/create-store.js");
const { SqliteStore } = await registryModule<typeof import("../../src/store/sqlite/sqlite-store.js")>("store/sqlite/sqlite-store.js");
const dataDir = bench.dataDir ?? mkdtempSync(join(tmpdir(), "registry-bench-server-"));
// serve's defaults: no environment and no .env read (the data dir has none),
// so a developer's settings cannot change what the bench measures.
const defaults = loadConfig({ env: {}, cwd: dataDir });
const config: Config = {
  ...defaults,
  host: "127.0.0.1",
  port: 0,
  store: bench.store,
  storeSync: bench.sync ?? defaults.storeSync,
  dataDir,
  registrationKey: BENCH_KEY,
  healthChecks: bench.healthChecks,
  healthCheckIntervalMs: bench.healthCheckInterval ?? defaults.healthCheckIntervalMs,
  healthCheckTtlMs: bench.healthCheckTTL ?? defaults.healthCheckTtlMs,
  healthCheckMaxRequests: bench.healthCheckMaxRequests ?? defaults.healthCheckMaxRequests,
  healthCheckBatchSize: bench.healthCheckBatchSize ?? defaults.healthCheckBatchSize,
  // The scenarios register more than the default quotas allow (scenario 1
  // puts tens of thousands into one type, scenario 5 100,000 in all): no
  // bound, though every registration still goes through the quota checks.
  maxInstances: 0,
  maxInstancesPerType: 0,
  maxInstancesPerKey: 0,
  maxServiceTypes: 0,
  maxWatchStreamsPerConnection: bench.maxWatchStreamsPerConnection ?? defaults.maxWatchStreamsPerConnection,
  maxWatchStreams: Math.max(defaults.maxWatchStreams, bench.maxWatchStreamsPerConnection ?? 0),
  maxXdsStreams: bench.maxXdsStreams ?? defaults.maxXdsStreams,
  logLevel: (bench.logLevel ?? defaults.logLevel) as Config["logLevel"],
};
// As serve's JSON lines; the bench drops the child's stdout (/dev/null).
const logger = createLogger(config.logLevel);
// The store startServer would open, made here so its commit groups can be read.
const store = await createStore(config, logger);
const startedAt = performance.now();
// httpPort 0: /metrics, /healthz and the JSON API on an ephemeral port, as serve serves them on HTTP_PORT.
const server = await startServer(config, logger, { store, httpPort: 0 });
const startMs = performance.now() - startedAt;
const { registry, port } = server;

const probes = { passed: 0, failed: 0 };
if (config.healthChecks) {
  registry.on("healthCheckPassed", () => probes.passed++);
  registry.on("healthCheckFailed", () => probes.failed++);
}

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
    await server.close();
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { port, httpPort: server.httpPort, startMs, uptimeMs: performance.now(), instances: registry.size });
