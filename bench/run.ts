/**
 * `npm run bench [-- --quick] [--only=1,3] [--profile] [--update-docs]`
 *
 * Starts the registry (the composition `serve` starts: metrics, serving state,
 * commit observer), the ceilings, etcd and the load in separate processes
 * on 127.0.0.1, runs the scenarios of issue 4, prints every figure beside its
 * ceiling and its peer (measured in this run) as ratios, and writes
 * bench/results/latest.json and latest.md. `--quick` uses small counts (CI:
 * under a minute); `--profile` runs the registry processes under
 * `node --cpu-prof` into bench/results/profiles (figures then include the
 * profiler's overhead); `--update-docs` rewrites the table in
 * docs/performance.md. Exits non-zero only when a scenario fails to run:
 * missed targets are reported, never asserted.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildDist } from "./lib/build-dist.js";
import { BenchContext, FULL, QUICK, startCeiling } from "./lib/context.js";
import { ETCD_BIN, killAllEtcd, startEtcd } from "./lib/etcd.js";
import { BenchChild, killAllChildren } from "./lib/ipc.js";
import { judge, renderTable, type JudgedFigure } from "./lib/report.js";
import { failureDetectionScenario } from "./scenarios/failure-detection.js";
import { getByTypeScenario } from "./scenarios/get-by-type.js";
import { memoryScenario } from "./scenarios/memory.js";
import { probingScenario } from "./scenarios/probing.js";
import { registerScenario } from "./scenarios/register.js";
import { watchFanoutScenario } from "./scenarios/watch-fanout.js";
import { xdsScenario } from "./scenarios/xds.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const RESULTS = join(ROOT, "bench", "results");
const DOCS = join(ROOT, "docs", "performance.md");

const args = process.argv.slice(2);
const flag = (name: string): boolean => args.includes(`--${name}`);
const quick = flag("quick");
const only = args.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",").map(Number);
const unknown = args.filter((a) => !["--quick", "--profile", "--update-docs"].includes(a) && !a.startsWith("--only="));
if (unknown.length > 0) {
  process.stderr.write(`unknown option(s): ${unknown.join(" ")}\nusage: npm run bench [-- --quick] [--only=1,3] [--profile] [--update-docs]\n`);
  process.exit(2);
}

if (flag("update-docs") && (quick || only)) {
  process.stderr.write("--update-docs needs a full run of every scenario (no --quick, no --only)\n");
  process.exit(2);
}

const SCENARIOS = [
  { id: 1, name: "Register", run: registerScenario },
  { id: 2, name: "GetByType", run: getByTypeScenario },
  { id: 3, name: "Watch fan-out", run: watchFanoutScenario },
  { id: 4, name: "Health probing", run: probingScenario },
  { id: 5, name: "Memory and start-up", run: memoryScenario },
  { id: 6, name: "Failure detection", run: failureDetectionScenario },
  { id: 7, name: "xDS", run: xdsScenario },
];

function machine(): Record<string, string | number> {
  let etcd = "missing";
  try {
    etcd = execFileSync(ETCD_BIN, ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "";
  } catch {
    // reported as missing; startEtcd fails with the install hint
  }
  return {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cpus: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    etcd,
  };
}

const tmp = mkdtempSync(join(os.tmpdir(), "registry-bench-"));
const cleanup = (): void => {
  killAllChildren();
  killAllEtcd();
  rmSync(tmp, { recursive: true, force: true });
};
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});
process.on("SIGTERM", () => {
  cleanup();
  process.exit(143);
});

const startedAt = new Date();
const t0 = performance.now();
const failures: string[] = [];
let figures: JudgedFigure[] = [];
let details: Record<string, unknown> = {};
try {
  mkdirSync(RESULTS, { recursive: true });
  const profileDir = flag("profile") ? join(RESULTS, "profiles") : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  mkdirSync(join(tmp, "etcd"), { recursive: true });
  // Every registry the scenarios start runs this build (see servers/registry-server.ts).
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] building dist/ (npm run build): the registry is measured as deployed\n`);
  const build = await buildDist();
  const etcd = await startEtcd(join(tmp, "etcd", "data"));
  const load = BenchChild.start("load", "load/load-worker.ts");
  const ceiling = startCeiling("ceiling", [], profileDir);
  const [, ceilingReady] = await Promise.all([load.ready, ceiling.ready]);
  const ctx = new BenchContext(quick ? QUICK : FULL, quick, profileDir, tmp, load, ceiling, `127.0.0.1:${ceilingReady.port}`, etcd, build);
  for (const s of SCENARIOS) {
    if (only && !only.includes(s.id)) continue;
    const s0 = performance.now();
    try {
      await s.run(ctx);
      ctx.log(`scenario ${s.id} (${s.name}) done in ${((performance.now() - s0) / 1000).toFixed(1)} s`);
    } catch (err) {
      failures.push(`scenario ${s.id} (${s.name}): ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      ctx.log(`scenario ${s.id} (${s.name}) FAILED: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  figures = ctx.figures.map(judge);
  details = ctx.details;
  await Promise.all([load.stop(), ceiling.stop()]);
  await etcd.stop();
} catch (err) {
  failures.push(err instanceof Error ? err.stack ?? err.message : String(err));
} finally {
  cleanup();
}

const seconds = (performance.now() - t0) / 1000;
const info = machine();
const table = renderTable(figures);
const judged = figures.filter((f) => f.met !== undefined);
const missed = judged.filter((f) => f.met === false);
const summary =
  `${quick ? "quick" : "full"} run, ${startedAt.toISOString()}, ${seconds.toFixed(0)} s; ` +
  `${info.cpus} × ${info.cpu}, ${info.memoryGiB} GiB, ${info.kernel}, node ${info.node}, ${info.etcd}`;
const markdown = `${summary}\n\n${table}\n\nTargets met: ${judged.length - missed.length} of ${judged.length}.\n`;

writeFileSync(
  join(RESULTS, "latest.json"),
  `${JSON.stringify({ mode: quick ? "quick" : "full", startedAt, seconds, machine: info, figures, details, failures }, null, 2)}\n`,
);
writeFileSync(join(RESULTS, "latest.md"), markdown);
process.stdout.write(`\n${markdown}\nwritten: bench/results/latest.json, bench/results/latest.md\n`);

if (flag("update-docs") && failures.length === 0) {
  const doc = readFileSync(DOCS, "utf8");
  const start = "<!-- bench-table:start -->";
  const end = "<!-- bench-table:end -->";
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${DOCS} has no ${start} ... ${end} section`);
  writeFileSync(DOCS, `${doc.slice(0, i + start.length)}\n${markdown}${doc.slice(j)}`);
  process.stdout.write("updated: docs/performance.md\n");
}
if (failures.length > 0) {
  process.stderr.write(`\nbench failed:\n${failures.join("\n")}\n`);
  process.exit(1);
}
process.exit(0);
