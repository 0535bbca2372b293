/**
 * What outlives the young generation under Register load: a server's sampling
 * heap profile over a closed loop, leaving out what a scavenge freed. What is
 * left is kept (instances, history) or promoted and freed later by a
 * mark-compact. Promoted bytes per call set how often mark-compacts come, and
 * kept bytes what each one costs. Prints the allocating functions by sampled
 * bytes per call (sampled every 4 KiB: read differences of ~10%, not bytes).
 *
 * usage: node --import tsx bench/investigations/promoted-heap.ts [--server=memory|sqlite|no-op|no-op-kept] [--sampled=promoted|kept|all] [--c=64] [--ms=8000] [--out=FILE.heapprofile]
 *   --server  the registry with that store (default memory), or the no-op ceiling (no-op-kept: keeping each request, as a registry keeps each instance)
 *   --sampled what the profile holds (default promoted; see heapSamplingCommands): promoted minus kept is what mark-compacts free
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arg } from "../lib/args.js";
import type { SampledObjects } from "../lib/heap-sampling.js";
import { BenchChild, killAllChildren } from "../lib/ipc.js";
import type { LoopResult } from "../load/closed-loop.js";
import type { RegistryServerConfig } from "../servers/registry-server.js";

interface ProfileNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly ProfileNode[];
}

const serverKind = arg("server", "memory");
const concurrency = Number(arg("c", "64"));
const durationMs = Number(arg("ms", "8000"));
const out = arg("out", "");
const sampled = arg("sampled", "promoted") as SampledObjects;

const load = BenchChild.start("load", "load/load-worker.ts");
const server = serverKind.startsWith("no-op")
  ? BenchChild.start<{ port: number }>("no-op", "servers/ceiling-server.ts", serverKind === "no-op-kept" ? ["--keep-requests"] : [], { nodeFlags: ["--expose-gc"] })
  : BenchChild.start<{ port: number }>("registry", "servers/registry-server.ts", [JSON.stringify(registryConfig(serverKind))], { readyTimeoutMs: 60_000, nodeFlags: ["--expose-gc"] });
/** The registry's configuration; a fresh data directory only for the SQLite store. */
function registryConfig(store: string): RegistryServerConfig {
  if (store === "memory") return { store, healthChecks: false };
  if (store !== "sqlite") throw new Error(`--server must be memory, sqlite, no-op or no-op-kept, not ${store}`);
  return { store, sync: "normal", dataDir: join(mkdtempSync(join(tmpdir(), "promoted-heap-")), "data"), healthChecks: false };
}

const [, { port }] = await Promise.all([load.ready, server.ready]);
const loop = { address: `127.0.0.1:${port}`, serviceType: "bench-svc", concurrency, serverPid: server.pid };
await load.request<LoopResult>("grpcRegister", { ...loop, warmupMs: 2000, durationMs: 1000 });
await server.request("startHeapSampling", { sampled });
const result = await load.request<LoopResult>("grpcRegister", { ...loop, warmupMs: 0, durationMs }, 120_000);
const profile = await server.request<{ head: ProfileNode }>("stopHeapSampling");
if (out) writeFileSync(out, JSON.stringify(profile));

const calls = result.opsPerSec * (durationMs / 1000);
const bySite = new Map<string, number>();
const walk = (node: ProfileNode): void => {
  const { functionName, url, lineNumber } = node.callFrame;
  const site = `${functionName || "(anonymous)"} ${url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/(src|bench)\//, "$1/")}:${lineNumber + 1}`;
  if (node.selfSize) bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
  for (const child of node.children) walk(child);
};
walk(profile.head);
const total = [...bySite.values()].reduce((a, b) => a + b, 0);
console.log(`${Math.round(calls)} calls at c=${concurrency}, ${serverKind}: ${(total / calls).toFixed(0)} sampled bytes per call (${sampled})`);
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
  console.log(`${(bytes / calls).toFixed(0).padStart(7)} B/call  ${((100 * bytes) / total).toFixed(1).padStart(5)}%  ${site}`);
}
await server.request("stop").catch(() => undefined);
killAllChildren();
process.exit(0);
