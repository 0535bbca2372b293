/**
 * Register with no gRPC and no network: the API layer's register (key check,
 * validation, token, core, store, log line) plus the response's mapping and
 * encoding, N times in one process, as CPU per call. Far steadier than the
 * server figures on a shared VM (a few percent run to run), so it is the way
 * to see what a change to our own per-call work does; run it in two trees
 * (a worktree of an older commit) to compare them. It is not the server's
 * cost: inside the server the same work runs interleaved with grpc-js and
 * node:http2, with colder caches, and costs about twice as much.
 *
 * usage: node --import tsx bench/investigations/register-in-process.ts [--n=200000] [--log=info|silent] [--rounds=3] [--batch=1] [--store=memory|sqlite]
 *   --store=sqlite  the SQLite store (normal sync) in a fresh temp directory each round
 *   --log=info   writes the log line to /dev/null, as the bench's registry does (default)
 *   --batch=N    starts N registrations before awaiting them, as the server
 *                runs the calls of one event-loop turn (c=64 brings ~30 a turn)
 *   --cold=KiB   writes a buffer of that size between calls and times the calls
 *                alone: beyond the L3 (--cold=40960 on a 32 MiB one) every call
 *                runs from memory, the far end of what one call in flight sees
 *                in the server (there, the client and the kernel run between
 *                calls). 1-4 MiB changes nothing: the L3 still holds it all.
 */
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegisterResponse } from "../../gen/registry/v1/registry.js";
import { RegistryApi } from "../../src/api/registry-api.js";
import { createLogger, fdDestination } from "../../src/logging/logger.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { toProtoInstance } from "../../src/server/proto-mapping.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { BENCH_KEY, BENCH_METADATA } from "../lib/workload.js";
import { arg } from "../lib/args.js";

const n = Number(arg("n", "200000"));
const rounds = Number(arg("rounds", "3"));
const level = arg("log", "info");
const batch = Number(arg("batch", "1"));
const coldKiB = Number(arg("cold", "0"));
const storeKind = arg("store", "memory");
if (storeKind !== "memory" && storeKind !== "sqlite") throw new Error(`--store must be memory or sqlite, not ${storeKind}`);
/** Written a byte per cache line between calls (`--cold`): evicts our code and data from the caches. */
const evictor = new Uint8Array(coldKiB * 1024);
function evictCaches(): void {
  for (let i = 0; i < evictor.length; i += 64) evictor[i] = (evictor[i] as number) + 1;
}

for (let round = 1; round <= rounds; round++) {
  const logger = createLogger(level, fdDestination(openSync("/dev/null", "w"))); // the server's destination, to /dev/null
  const dataDir = storeKind === "sqlite" ? mkdtempSync(join(tmpdir(), "register-in-process-")) : undefined;
  const store = dataDir !== undefined ? new SqliteStore({ dataDir }) : undefined;
  const registry = new ServiceRegistry({ logger, healthChecks: false, ...(store ? { store } : {}) });
  await registry.start();
  const stop = async (): Promise<void> => {
    await registry.close();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  const api = new RegistryApi(registry, new RegistrationKeys([BENCH_KEY]));
  const ctx = { credentials: { key: BENCH_KEY } };
  const started = process.cpuUsage();
  const registerOne = async (i: number): Promise<void> => {
    const { instance, token } = await api.register(ctx, {
      serviceType: "bench-svc",
      port: 8000 + (i % 1000),
      // Joined, not a template literal: a flat string, as gRPC decoding yields.
      host: [10, (i >> 16) & 255, (i >> 8) & 255, i & 255].join("."),
      metadata: BENCH_METADATA,
    });
    RegisterResponse.encode({ serviceId: instance.id, token, instance: toProtoInstance(instance) }).finish();
  };
  if (coldKiB > 0) {
    // Each call alone, caches evicted before it; only the calls are timed (wall time of a busy thread).
    let ns = 0n;
    for (let i = 0; i < n; i++) {
      evictCaches();
      const t0 = process.hrtime.bigint();
      await registerOne(i);
      ns += process.hrtime.bigint() - t0;
    }
    await stop();
    console.log(`round ${round}: ${(Number(ns) / 1000 / n).toFixed(2)} µs per Register, caches evicted (${coldKiB} KiB) before each (${n} calls, log ${level}, ${storeKind})`);
    continue;
  }
  const turn: Promise<void>[] = [];
  for (let i = 0; i < n; i += batch) {
    for (let j = i; j < Math.min(i + batch, n); j++) turn.push(registerOne(j));
    await Promise.all(turn);
    turn.length = 0;
  }
  const used = process.cpuUsage(started);
  await stop();
  console.log(`round ${round}: ${((used.user + used.system) / n).toFixed(2)} µs CPU per Register (${n} calls, ${batch} a turn, log ${level}, ${storeKind})`);
}
