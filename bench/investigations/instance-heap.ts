/**
 * V8 heap bytes per instance, 100,000 instances registered through the API
 * layer (no gRPC), with the request's strings either fresh per call, as
 * gRPC decoding yields them (the default), or shared constants (`--shared`).
 * Steady within ~3 B run to run (a GC before each reading; the figure moves
 * a little with --n), so it shows what a change to what an instance keeps
 * does; the bench's RSS figure
 * (scenario 5) adds the process around it.
 *
 * usage: node --expose-gc --import tsx bench/investigations/instance-heap.ts [--shared] [--n=100000]
 */
import { RegistryApi } from "../../src/api/registry-api.js";
import { createLogger } from "../../src/logging/logger.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { BENCH_KEY, BENCH_METADATA } from "../lib/workload.js";
import { arg } from "../lib/args.js";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const shared = process.argv.includes("--shared");
const n = Number(arg("n", "100000"));
/** A string as decoding yields it: equal to `s`, but a copy of its own. */
const decoded = (s: string): string => (shared ? s : Buffer.from(s, "utf8").toString("utf8"));

const registry = new ServiceRegistry({ logger: createLogger("silent"), healthChecks: false, historySize: 100 });
await registry.start();
const api = new RegistryApi(registry, new RegistrationKeys([BENCH_KEY]));
const ctx = { credentials: { key: BENCH_KEY } };
const register = (i: number) =>
  api.register(ctx, {
    serviceType: decoded("bench-svc"),
    port: 8000 + (i % 1000),
    host: [10, (i >> 16) & 255, (i >> 8) & 255, i & 255].join("."),
    metadata: Object.fromEntries(Object.entries(BENCH_METADATA).map(([k, v]) => [k, decoded(v)])),
    healthCheckPath: decoded("/health"),
  });
for (let i = 0; i < 1000; i++) await register(i); // the type, its maps and the code warmed up first
gc();
const before = process.memoryUsage().heapUsed;
for (let i = 1000; i < n + 1000; i++) await register(i);
gc();
const perInstance = (process.memoryUsage().heapUsed - before) / n;
console.log(`${perInstance.toFixed(1)} heap bytes per instance (${n} registered, strings ${shared ? "shared" : "fresh, as decoded"})`);
