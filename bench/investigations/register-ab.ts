/**
 * A/B of Register CPU per call: this tree's registry, optionally another
 * tree's (`--against=../other-checkout`, a worktree of an older commit with
 * node_modules), and the no-op ceiling, in alternating closed-loop windows,
 * round after round. On a machine whose speed drifts (a shared VM: adjacent
 * windows of the no-op itself differ by ±25%) one run proves little; the
 * median of each build's per-round ratio to the no-op does. Prints every
 * round and the medians.
 *
 * usage: node --import tsx bench/investigations/register-ab.ts [--against=PATH] [--flags=NODE_FLAGS] [--stores=memory,sqlite] [--c=16] [--rounds=7] [--ms=2000] [--compiled] [--profile=DIR]
 *   --flags=F      also this tree's registry under node flags F (space-separated, e.g. "--max-semi-space-size=32"), beside it without them
 *   --compiled     each tree's registry from its compiled dist/ (built first, with its own tsc), as `npm run bench` runs it (an --against tree older than that option runs its sources); default the sources under tsx
 *   --profile=DIR  every server (the no-op too) under node --cpu-prof, into DIR: compare them with profile-summary
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BenchChild, killAllChildren } from "../lib/ipc.js";
import type { LoopResult } from "../load/closed-loop.js";
import { arg } from "../lib/args.js";
import { execFileSync } from "node:child_process";

const BENCH = fileURLToPath(new URL("../", import.meta.url));
const against = arg("against", "");
const stores = arg("stores", "memory").split(",");
const concurrency = Number(arg("c", "16"));
const rounds = Number(arg("rounds", "7"));
const durationMs = Number(arg("ms", "2000"));
const profileDir = arg("profile", "");
const flags = arg("flags", "").split(" ").filter(Boolean);
const profiled = profileDir ? { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${resolve(profileDir)}`] } : {};

const load = BenchChild.start("load", "load/load-worker.ts");
const ceiling = BenchChild.start<{ port: number }>("ceiling", "servers/ceiling-server.ts", [], profiled);
const [, ceilingReady] = await Promise.all([load.ready, ceiling.ready]);
const servers = [{ name: "no-op", address: `127.0.0.1:${ceilingReady.port}`, pid: ceiling.pid }];
const compiled = process.argv.includes("--compiled");
const trees: { tree: string; root: string; file: string; nodeFlags?: string[] }[] = [{ tree: "this", root: resolve(BENCH, ".."), file: "servers/registry-server.ts" }];
if (flags.length > 0) trees.push({ ...trees[0]!, tree: "this+flags", nodeFlags: flags });
if (against) trees.push({ tree: "against", root: resolve(against), file: relative(BENCH, resolve(against, "bench/servers/registry-server.ts")) });
/** The tree's compiled dist/, built now with the tree's own tsc, when --compiled is given. */
function buildOf(root: string): { build?: string } {
  if (!compiled) return {};
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
  return { build: join(root, "dist") };
}
const registries: BenchChild<{ port: number }>[] = [];
const data = mkdtempSync(join(tmpdir(), "register-ab-"));
for (const store of stores) {
  for (const { tree, root, file, nodeFlags } of trees) {
    const config = { store: store === "memory" ? "memory" : "sqlite", sync: "normal", dataDir: join(data, `${tree}-${store}`), healthChecks: false, ...buildOf(root) };
    const childFlags = [...(profiled.nodeFlags ?? []), ...(nodeFlags ?? [])];
    const child = BenchChild.start<{ port: number }>(`${tree}-${store}`, file, [JSON.stringify(config)], { readyTimeoutMs: 60_000, nodeFlags: childFlags });
    registries.push(child);
    servers.push({ name: `${tree}:${store}`, address: `127.0.0.1:${(await child.ready).port}`, pid: child.pid });
  }
}
const ratios = new Map<string, number[]>();
for (let round = 0; round < rounds; round++) {
  const results: LoopResult[] = [];
  for (const { address, pid } of servers) {
    results.push(
      await load.request<LoopResult>("grpcRegister", { address, serviceType: "bench-svc", concurrency, serverPid: pid, warmupMs: 1000, durationMs }, 120_000),
    );
  }
  const noop = results[0]!.serverCpuPerOpUs;
  const line = results.map((r, k) => {
    const name = servers[k]!.name;
    if (k > 0) ratios.set(name, [...(ratios.get(name) ?? []), r.serverCpuPerOpUs / noop]);
    const ratio = k > 0 ? ` (${(r.serverCpuPerOpUs / noop).toFixed(2)}x)` : "";
    return `${name} ${r.serverCpuPerOpUs.toFixed(1)} µs (helpers ${r.serverHelperThreadsCpuPerOpUs.toFixed(0)})${ratio}, ${Math.round(r.opsPerSec)}/s, p99 ${r.latencyMs.p99.toFixed(2)} ms`;
  });
  console.log(`round ${round + 1}: ${line.join("  |  ")}`);
}
for (const [name, values] of ratios) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`${name}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)}x the no-op (${sorted.map((v) => v.toFixed(2)).join(", ")})`);
}
await Promise.all([...registries, ceiling].map((r) => r.stop())); // a profile is written on a clean exit
killAllChildren();
process.exit(0);
