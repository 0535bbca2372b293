/**
 * Where the fan-out's server CPU per watcher·event goes, kernel and GC
 * included: the bare push ceiling and this tree's registry (compiled, as
 * `npm run bench` runs it), each holding `--streams` watch streams on one
 * connection from one watch process, each run under `node --perf-basic-prof`
 * and sampled by Linux `perf record -g` (every thread) while `--events`
 * registrations fan out, spaced as scenario 3 spaces them.
 *
 * Prints, per server, CPU per watcher·event split into our code (with what it
 * calls), the kernel, V8's GC and the rest (grpc-js, node:http2, V8, libuv);
 * then the leaf symbols (self time) whose cost per watcher·event differs most
 * between the two: where the registry's extra goes.
 *
 * Needs `perf` (Debian: linux-perf) and permission to profile the children
 * (root, or kernel.perf_event_paranoid <= 1).
 *
 * usage: node --import tsx bench/investigations/fanout-perf.ts [--streams=1000] [--events=400] [--top=30] [--out=DIR]
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arg } from "../lib/args.js";
import { buildDist } from "../lib/build-dist.js";
import { BUCKETS, bucket, readStacks, type Stack } from "../lib/perf-stacks.js";
import { BenchChild, killAllChildren } from "../lib/ipc.js";
import { cpuMark, cpuSince } from "../lib/proc-stat.js";
import { sleep } from "../lib/stats.js";

const streams = Number(arg("streams", "1000"));
const events = Number(arg("events", "400"));
const top = Number(arg("top", "30"));
const out = arg("out", "") || mkdtempSync(join(tmpdir(), "fanout-perf-"));
mkdirSync(out, { recursive: true });

const build = await buildDist();
const perfFlags = { nodeFlags: ["--perf-basic-prof"], readyTimeoutMs: 60_000 };
const registryConfig = { store: "memory", dataDir: join(out, "data"), healthChecks: false, maxWatchStreamsPerConnection: streams, build };
const servers = [
  { name: "bare push", system: "ceiling", child: BenchChild.start<{ port: number }>("ceiling", "servers/ceiling-server.ts", [], perfFlags) },
  { name: "registry", system: "registry", child: BenchChild.start<{ port: number }>("registry", "servers/registry-server.ts", [JSON.stringify(registryConfig)], perfFlags) },
] as const;
const load = BenchChild.start("load", "load/load-worker.ts");
const watch = BenchChild.start("watch", "load/watch-worker.ts");
await Promise.all([load.ready, watch.ready]);

let seq = 0;
const delivered = new Map<number, () => void>();
watch.on("delivered", (data) => delivered.get((data as { seq: number }).seq)?.());

/** One registration, resolved once every stream has its event. */
async function fanOut(system: string, target: string, channel: string): Promise<void> {
  const n = ++seq;
  const all = new Promise<void>((resolve) => delivered.set(n, resolve));
  await load.request("fanoutTrigger", { system, target, channel, seq: n });
  await all;
  delivered.delete(n);
}

// Our code, as compiled into dist/src/.
const isOurs = (frame: string): boolean => frame.includes(`${build}/src/`);

/** A leaf frame without the addresses and source positions that differ between processes. */
function leafName(stack: Stack): string {
  return (stack[0] ?? "?")
    .replace(/^JS:[*~^]?/, "")
    .replace(/file:\/\/\/.*?\/(src|node_modules)\//, "$1/")
    .replace(/:\d+:\d+$/, "")
    .replace(/\+0x[0-9a-f]+$/, "")
    .slice(0, 100);
}

const leaves = new Map<string, Map<string, number>>();
for (const { name, system, child } of servers) {
  const target = `127.0.0.1:${(await child.ready).port}`;
  const channel = `perf-${system}`;
  await watch.request("open", { system, target, streams, channel }, 120_000);
  // Warm the JIT first, unmeasured.
  for (let i = 0; i < 100; i++) await fanOut(system, target, channel);
  const file = join(out, `${system}.perf.data`);
  const recorder = spawn("perf", ["record", "-F", "1999", "-g", "-p", String(child.pid), "-o", file], { stdio: ["ignore", "ignore", "inherit"] });
  const recorded = new Promise<number | null>((resolve) => recorder.on("close", resolve));
  recorder.on("error", (err) => {
    process.stderr.write(`cannot run perf: ${err.message} (Debian: apt-get install linux-perf)\n`);
    process.exit(1);
  });
  await sleep(300); // perf attaches
  const cpu = cpuMark(child.pid);
  for (let i = 0; i < events; i++) {
    await fanOut(system, target, channel);
    await sleep(5 + Math.random() * 10);
  }
  const used = cpuSince(cpu);
  recorder.kill("SIGINT");
  const code = await recorded;
  const closed = await watch.request<{ failure: string | null }>("close");
  if (closed.failure) throw new Error(`${name}: a watch stream failed: ${closed.failure}`);
  if (!existsSync(file)) throw new Error(`perf record wrote nothing (exit ${code}): see its message above (kernel.perf_event_paranoid?)`);
  const stacks = readStacks(file);
  const perWatcherEvent = (used.cpuSeconds * 1e6) / events / streams;
  const shares = new Map<string, number>();
  const byLeaf = new Map<string, number>();
  for (const s of stacks) {
    shares.set(bucket(s, isOurs), (shares.get(bucket(s, isOurs)) ?? 0) + 1);
    byLeaf.set(leafName(s), (byLeaf.get(leafName(s)) ?? 0) + 1);
  }
  const scale = perWatcherEvent / stacks.length;
  leaves.set(name, new Map([...byLeaf].map(([leaf, n]) => [leaf, n * scale])));
  const parts = BUCKETS.map((b) => `${b} ${((shares.get(b) ?? 0) * scale).toFixed(2)}`);
  console.log(`${name.padEnd(10)} ${perWatcherEvent.toFixed(2)} µs/watcher·event (${stacks.length} samples): ${parts.join(", ")}`);
  await sleep(200);
}

// Where they differ: each leaf's cost per watcher·event in both, largest difference first.
const [ceiling, ours] = [leaves.get("bare push") as Map<string, number>, leaves.get("registry") as Map<string, number>];
const names = new Set([...ceiling.keys(), ...ours.keys()]);
const diffs = [...names].map((n) => ({ n, a: ceiling.get(n) ?? 0, b: ours.get(n) ?? 0 })).sort((x, y) => Math.abs(y.b - y.a) - Math.abs(x.b - x.a));
console.log(`\nleaf symbols, self µs per watcher·event: registry, bare push, difference`);
for (const { n, a, b } of diffs.slice(0, top)) {
  console.log(`  ${b.toFixed(3).padStart(7)} ${a.toFixed(3).padStart(7)} ${(b - a >= 0 ? "+" : "") + (b - a).toFixed(3)}  ${n}`);
}
console.log(`\nperf data: ${out}`);
await Promise.all([...servers.map((s) => s.child.stop()), load.stop(), watch.stop()]);
killAllChildren();
process.exit(0);
