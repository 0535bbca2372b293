/**
 * Where a Register's server CPU goes, kernel and GC included: the no-op
 * ceiling, the kept-requests floor and this tree's registry, each run under
 * `node --perf-basic-prof` and sampled by Linux `perf record -g` (every
 * thread of the process) during a closed loop at `--c`. A V8 `--cpu-prof`
 * sees only the main thread's JavaScript, and on this VM it puts samples at
 * system-call returns; perf sees the whole process.
 *
 * Prints, per server, CPU per call split into our code (with what it calls:
 * pino, crypto, system calls), the kernel, V8's GC and the rest (grpc-js and
 * what it calls, node:http2, V8, libuv); then, for the registry, the
 * JavaScript functions of our code's share with their inclusive CPU per call.
 *
 * Needs `perf` (Debian: linux-perf) and permission to profile the children
 * (root, or kernel.perf_event_paranoid <= 1).
 *
 * usage: node --import tsx bench/investigations/register-perf.ts [--c=1] [--ms=5000] [--store=memory|sqlite] [--top=25] [--out=DIR]
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { BenchChild, killAllChildren } from "../lib/ipc.js";
import type { LoopResult } from "../load/closed-loop.js";
import { arg } from "../lib/args.js";
import { BUCKETS, bucket, readStacks, type Stack } from "../lib/perf-stacks.js";

const concurrency = Number(arg("c", "1"));
const durationMs = Number(arg("ms", "5000"));
const store = arg("store", "memory");
const top = Number(arg("top", "25"));
const out = arg("out", "") || mkdtempSync(join(tmpdir(), "register-perf-"));
mkdirSync(out, { recursive: true });

const perfFlags = { nodeFlags: ["--perf-basic-prof"], readyTimeoutMs: 60_000 };
const load = BenchChild.start("load", "load/load-worker.ts");
const config = { store, sync: "normal", dataDir: join(out, "data"), healthChecks: false };
const servers = [
  { name: "no-op", child: BenchChild.start<{ port: number }>("no-op", "servers/ceiling-server.ts", [], perfFlags) },
  { name: "kept floor", child: BenchChild.start<{ port: number }>("kept", "servers/ceiling-server.ts", ["--keep-requests"], perfFlags) },
  { name: `registry (${store})`, child: BenchChild.start<{ port: number }>("registry", "servers/registry-server.ts", [JSON.stringify(config)], perfFlags) },
];
await load.ready;

// This checkout's src/ as V8 names its ES modules (grpc-js's build/src/ is CommonJS: plain paths).
const OURS_URL = pathToFileURL(fileURLToPath(new URL("../../src/", import.meta.url))).href;
const isOurs = (frame: string): boolean => frame.includes(OURS_URL);

const rows: string[] = [];
let registryStacks: { stacks: Stack[]; usPerCall: number } | undefined;
for (const { name, child } of servers) {
  const address = `127.0.0.1:${(await child.ready).port}`;
  // Warm the JIT first (see "How it is measured" in docs/performance.md).
  await load.request<LoopResult>("grpcRegister", { address, serviceType: "bench-svc", concurrency: 16, serverPid: child.pid, warmupMs: 0, durationMs: 3000 }, 60_000);
  const file = join(out, `${child.pid}.perf.data`);
  const recorder = spawn("perf", ["record", "-F", "1999", "-g", "-p", String(child.pid), "-o", file], { stdio: ["ignore", "ignore", "inherit"] });
  // Listened for at once: a perf that fails (not installed, not permitted) exits before the loop ends.
  const recorded = new Promise<number | null>((resolve) => recorder.on("close", resolve));
  recorder.on("error", (err) => {
    process.stderr.write(`cannot run perf: ${err.message} (Debian: apt-get install linux-perf)\n`);
    process.exit(1);
  });
  const result = await load.request<LoopResult>(
    "grpcRegister",
    { address, serviceType: "bench-svc", concurrency, serverPid: child.pid, warmupMs: 500, durationMs },
    120_000,
  );
  recorder.kill("SIGINT");
  const code = await recorded;
  if (!existsSync(file)) throw new Error(`perf record wrote nothing (exit ${code}): see its message above (kernel.perf_event_paranoid?)`);
  const stacks = readStacks(file);
  if (stacks.length === 0) throw new Error(`perf recorded no samples of ${name}`);
  const perCall = result.serverCpuPerOpUs;
  const shares = new Map<string, number>();
  for (const s of stacks) {
    const b = bucket(s, isOurs);
    shares.set(b, (shares.get(b) ?? 0) + 1);
  }
  const parts = BUCKETS.map(
    (b) => `${b} ${(((shares.get(b) ?? 0) / stacks.length) * perCall).toFixed(1)}`,
  );
  rows.push(`${name.padEnd(18)} ${perCall.toFixed(1).padStart(6)} µs/call (${Math.round(result.opsPerSec)}/s; ${stacks.length} samples): ${parts.join(", ")}`);
  if (child === servers[2]!.child) registryStacks = { stacks, usPerCall: perCall };
}

console.log(`Register at c=${concurrency}, ${durationMs} ms per server, CPU per call (µs) of every thread:`);
for (const row of rows) console.log(`  ${row}`);
if (registryStacks) {
  // Inclusive CPU per call of each JavaScript function under our code (a sample counts once per function).
  const inclusive = new Map<string, number>();
  for (const s of registryStacks.stacks) {
    if (bucket(s, isOurs) !== "our code") continue;
    const outermost = s.findLastIndex(isOurs);
    for (const f of new Set(s.slice(0, outermost + 1))) {
      if (!f.startsWith("JS:") && !/^\[k\] (ksys_write|do_writev)$/.test(f)) continue;
      inclusive.set(f, (inclusive.get(f) ?? 0) + 1);
    }
  }
  const scale = registryStacks.usPerCall / registryStacks.stacks.length;
  console.log(`\nregistry: functions in our code's share, inclusive CPU per call (µs):`);
  for (const [f, n] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${(n * scale).toFixed(2).padStart(6)}  ${f.replace(/^JS:[*~^]?/, "").replace(/file:\/\/\/.*?\/(src|node_modules)\//, "$1/").slice(0, 110)}`);
  }
}
console.log(`\nperf data: ${out}`);
await Promise.all(servers.map((s) => s.child.stop()));
killAllChildren();
process.exit(0);
