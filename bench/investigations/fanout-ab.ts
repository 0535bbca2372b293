/**
 * A/B of fan-out server CPU per watcher·event: the bare push, this tree's
 * registry and, with `--against=PATH`, another tree's (a worktree of another
 * commit, with node_modules), each compiled as `npm run bench` runs it. Every
 * system holds `--streams` watch streams from a watch process of its own for
 * the whole run, and the events go in blocks, the systems taking turns in
 * rotating order (each turn's first event unmeasured), so a drift of the
 * machine's speed falls on all of them alike. Prints each system's pooled
 * CPU per watcher·event and its ratio to the push, then every block: with
 * CPU read in 10 ms ticks and blocks of 25 events to 1,000 streams, one
 * block moves by ±0.4 µs, so compare pooled figures of 16 blocks or more.
 * With `--against` omitted the registry runs twice (an A/A): the spread of
 * that ratio is the run's noise.
 *
 * usage: node --import tsx bench/investigations/fanout-ab.ts [--against=PATH] [--streams=1000] [--blocks=16] [--per-block=25]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { arg } from "../lib/args.js";
import { buildDist } from "../lib/build-dist.js";
import { BenchChild, killAllChildren } from "../lib/ipc.js";
import { cpuMark, cpuSince } from "../lib/proc-stat.js";
import { sleep } from "../lib/stats.js";

const against = arg("against", "");
const streams = Number(arg("streams", "1000"));
const blocks = Number(arg("blocks", "16"));
const perBlock = Number(arg("per-block", "25"));
const WARM_UP_EVENTS = 100;

/** Another tree's compiled dist/, built with that tree's own tsc. */
function buildOf(root: string): string {
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
  return join(root, "dist");
}

const data = mkdtempSync(join(tmpdir(), "fanout-ab-"));
const thisBuild = await buildDist();
const builds = [
  { name: "this", build: thisBuild },
  { name: against ? "against" : "this again", build: against ? buildOf(resolve(against)) : thisBuild },
];
const registryConfig = (name: string, build: string): string =>
  JSON.stringify({ store: "memory", dataDir: join(data, name.replace(" ", "-")), healthChecks: false, maxWatchStreamsPerConnection: streams, build });
const systems = [
  { name: "bare push", kind: "ceiling", child: BenchChild.start<{ port: number }>("ceiling", "servers/ceiling-server.ts") },
  ...builds.map(({ name, build }) => ({
    name,
    kind: "registry",
    child: BenchChild.start<{ port: number }>(name, "servers/registry-server.ts", [registryConfig(name, build)], { readyTimeoutMs: 60_000 }),
  })),
];
const load = BenchChild.start("load", "load/load-worker.ts");
const watchers = systems.map((s) => BenchChild.start(`watch ${s.name}`, "load/watch-worker.ts"));
await Promise.all([load.ready, ...watchers.map((w) => w.ready)]);
const targets = await Promise.all(systems.map(async (s) => `127.0.0.1:${(await s.child.ready).port}`));
const channelOf = (i: number): string => `fanout-ab-${i}`;

let seq = 0;
const delivered = new Map<number, () => void>();
for (const w of watchers) w.on("delivered", (d) => delivered.get((d as { seq: number }).seq)?.());
/** One registration (or no-op push) on system `i`, resolved once every one of its streams has the event. */
async function fanOut(i: number): Promise<void> {
  const n = ++seq;
  const all = new Promise<void>((done) => delivered.set(n, done));
  await load.request("fanoutTrigger", { system: systems[i]!.kind, target: targets[i], channel: channelOf(i), seq: n });
  await all;
  delivered.delete(n);
}

for (const [i, s] of systems.entries()) await watchers[i]!.request("open", { system: s.kind, target: targets[i], streams, channel: channelOf(i) }, 120_000);
// Unmeasured: the first events pay for compiling each server's path.
for (let k = 0; k < WARM_UP_EVENTS; k++) for (let i = 0; i < systems.length; i++) await fanOut(i);

const measured = systems.map(() => ({ cpuSeconds: 0, events: 0, blocks: [] as number[] }));
for (let b = 0; b < blocks; b++) {
  for (let k = 0; k < systems.length; k++) {
    const i = (k + b) % systems.length;
    const into = measured[i]!;
    await fanOut(i); // its turn's first event meets caches the others' turns filled
    await sleep(5 + Math.random() * 10);
    const mark = cpuMark(systems[i]!.child.pid);
    for (let e = 0; e < perBlock; e++) {
      await fanOut(i);
      await sleep(5 + Math.random() * 10);
    }
    const used = cpuSince(mark).cpuSeconds;
    into.cpuSeconds += used;
    into.events += perBlock;
    into.blocks.push((used * 1e6) / perBlock / streams);
  }
}

const perWatcherEvent = measured.map((m) => (m.cpuSeconds * 1e6) / m.events / streams);
const push = perWatcherEvent[0]!;
console.log(`server CPU per watcher·event, ${blocks} blocks of ${perBlock} events to ${streams} streams each:`);
for (const [i, s] of systems.entries()) {
  const ratio = i === 0 ? "" : ` (${(perWatcherEvent[i]! / push).toFixed(3)}× the push)`;
  console.log(`  ${s.name.padEnd(10)} ${perWatcherEvent[i]!.toFixed(2)} µs${ratio}  blocks: ${measured[i]!.blocks.map((x) => x.toFixed(1)).join(" ")}`);
}
console.log(`  ${builds[1]!.name} / this: ${(perWatcherEvent[2]! / perWatcherEvent[1]!).toFixed(3)}`);
await Promise.all(watchers.map((w) => w.request("close").catch(() => undefined)));
await Promise.all([...systems.map((s) => s.child.stop()), load.stop(), ...watchers.map((w) => w.stop())]);
killAllChildren();
rmSync(data, { recursive: true, force: true });
process.exit(0);
