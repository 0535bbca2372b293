import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { profileFlags, type BenchContext } from "../lib/context.js";
import { startEtcd } from "../lib/etcd.js";
import { BenchChild } from "../lib/ipc.js";
import type { Figure } from "../lib/report.js";
import { rssBytes } from "../lib/proc-stat.js";
import { median, sleep } from "../lib/stats.js";
import { timeToLine } from "../lib/time-to-line.js";
import { BENCH_KEY, typeName } from "../lib/workload.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

type GcResult = { heapUsed: number; heapTotal: number; external: number; rss: number; size?: number };

/**
 * Scenario 5: resident memory per instance with 100,000 instances registered
 * (SQLite store, health checks off, garbage collected before each reading),
 * and the start-up time of the server (`serve`, as deployed: compiled to
 * JavaScript; and as `npm start` runs it, under tsx) whose SQLite data holds
 * them: spawn until its "serving" log line, compiled the median of 3 in full
 * mode (under tsx, which has no target, one).
 * Ceiling: a bare process holding the same records in one Map, and one
 * reading the same rows, run the same way as the server. Peer: etcd holding
 * the same records as keys (no leases), and etcd restarting on that data.
 */
export async function memoryScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.memory;
  const n = p.types * p.perType;
  const dataDir = ctx.dir("s5-registry");
  const config = { store: "sqlite" as const, sync: "normal" as const, dataDir, healthChecks: false };
  const repeats = ctx.quick ? 1 : 3;

  // RSS per instance is the slope between 10% and 100% of the instances, so the
  // process's fixed costs (code, young generation, SQLite cache) are not
  // spread over the instances; the plain average over an empty process is kept too.
  const types = Array.from({ length: p.types }, (_, i) => typeName(i));
  const firstTypes = types.slice(0, Math.max(1, Math.round(p.types / 10)));
  const n1 = firstTypes.length * p.perType;
  const blocks = (list: string[]) => list.map((t) => ({ serviceType: t, count: p.perType }));

  ctx.log(`scenario 5: RSS with ${n} instances`);
  const reg = await ctx.startRegistry("s5-memory", config, ["--expose-gc"]);
  const gc0 = await reg.child.request<GcResult>("gc");
  const rss0 = rssBytes(reg.child.pid);
  await reg.child.request("seed", blocks(firstTypes), 300_000);
  await reg.child.request<GcResult>("gc");
  const rss1 = rssBytes(reg.child.pid);
  const seeded = await reg.child.request<{ ms: number }>("seed", blocks(types.slice(firstTypes.length)), 300_000);
  await sleep(200);
  const gc1 = await reg.child.request<GcResult>("gc");
  const rss2 = rssBytes(reg.child.pid);
  const ours = { perInstance: (rss2 - rss1) / (n - n1), average: (rss2 - rss0) / n };
  await reg.child.stop();

  const bare = BenchChild.start("memory-ceiling", "load/memory-ceiling.ts", [], { nodeFlags: ["--expose-gc"] });
  await bare.ready;
  await bare.request("gc");
  const bareRss0 = rssBytes(bare.pid);
  await bare.request("hold", { count: n1 });
  await bare.request("gc");
  const bareRss1 = rssBytes(bare.pid);
  await bare.request("hold", { count: n - n1 });
  await bare.request("gc");
  const bareRss2 = rssBytes(bare.pid);
  const bareMem = { perInstance: (bareRss2 - bareRss1) / (n - n1), average: (bareRss2 - bareRss0) / n };
  await bare.stop();

  ctx.log(`scenario 5: start-up with ${n} stored instances`);
  const compiled = ctx.build;
  const dbPath = join(dataDir, "registry.db");
  // The server's whole configuration: nothing from the bench's own environment (LOG_LEVEL, TLS_*, ...).
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
    TSX_TSCONFIG_PATH: join(ROOT, "tsconfig.json"),
    LOG_LEVEL: "info",
    STORE: "sqlite",
    DATA_DIR: dataDir,
    HOST: "127.0.0.1",
    PORT: "0",
    HTTP_PORT: "0",
    HEALTH_CHECKS: "false",
    SERVICE_REGISTRATION_KEY: BENCH_KEY,
  };
  // Run from the data folder: the server reads `.env` from its working directory, so a
  // developer's `.env` in the checkout would configure it. Hence tsx by its absolute URL.
  const tsx = ["--import", import.meta.resolve("tsx")];
  const reader = join(ROOT, "bench/load/startup-reader.mjs");
  // The server as deployed (compiled, docs/operations.md; the target) and as `npm start` runs it, each beside the bare reader run the same way.
  const forms = [
    { name: "compiled", metric: "start-up, compiled", readerName: "node reading rows", node: [], server: join(compiled, "src/cli/main.js"), target: true },
    { name: "tsx", metric: "start-up, npm start (tsx)", readerName: "node+tsx reading rows", node: tsx, server: join(ROOT, "src/cli/main.ts"), target: false },
  ].map((form) => ({ ...form, starts: [] as number[], readerStarts: [] as number[] }));
  for (let i = 0; i < repeats; i++) {
    // The tsx form has no target: one start of it is enough (a full run is held under 6 minutes).
    for (const form of i === 0 ? forms : forms.filter((f) => f.target)) {
      const server = await timeToLine(
        [...profileFlags(ctx.profileDir, `s5-restart-${form.name}-${i}`), ...form.node, form.server, "serve"],
        (l) => l.startsWith("{") && l.includes('"msg":"serving gRPC'),
        { env, cwd: dataDir },
      );
      const held = (JSON.parse(server.line) as { instances?: number }).instances;
      if (held !== n) throw new Error(`restarted registry (${form.name}) holds ${held} instances, not ${n}`);
      form.starts.push(server.ms);
      const read = await timeToLine([...form.node, reader, dbPath], (l) => l.includes("rows read"), { env, cwd: dataDir });
      if ((JSON.parse(read.line) as { rows: number }).rows !== n) throw new Error(`the bare reader read ${read.line}, not ${n} rows`);
      form.readerStarts.push(read.ms);
    }
  }

  ctx.log(`scenario 5: etcd with ${n} keys`);
  const etcdDir = ctx.dir("s5-etcd/data");
  let etcd = await startEtcd(etcdDir);
  await sleep(500);
  const etcdRss0 = rssBytes(etcd.pid);
  await ctx.load.request("etcdSeed", { endpoint: etcd.endpoint, types: firstTypes, perType: p.perType }, 300_000);
  await sleep(1000);
  const etcdRss1 = rssBytes(etcd.pid);
  await ctx.load.request("etcdSeed", { endpoint: etcd.endpoint, types: types.slice(firstTypes.length), perType: p.perType }, 300_000);
  await sleep(1000);
  const etcdRss2 = rssBytes(etcd.pid);
  const etcdMem = { perInstance: (etcdRss2 - etcdRss1) / (n - n1), average: (etcdRss2 - etcdRss0) / n };
  await etcd.stop();
  const etcdStart: number[] = [];
  for (let i = 0; i < repeats; i++) {
    etcd = await startEtcd(etcdDir);
    etcdStart.push(etcd.readyAfterMs);
    await etcd.stop();
  }

  const caseName = `${n.toLocaleString("en-US")} instances, sqlite`;
  ctx.add(
    {
      scenario: "5 Memory",
      case: caseName,
      metric: "RSS/instance (10%→100%)",
      unit: "bytes",
      ours: ours.perInstance,
      ceiling: { name: "bare Map", value: bareMem.perInstance },
      peer: { name: "etcd/key", value: etcdMem.perInstance },
      targets: [{ against: "absolute", op: "<=", bound: 1024 }],
      detail: { average: { ours: ours.average, bare: bareMem.average, etcd: etcdMem.average }, heapPerInstance: (gc1.heapUsed - gc0.heapUsed) / n },
    },
    ...forms.map(
      (form): Figure => ({
        scenario: "5 Memory",
        case: caseName,
        metric: form.metric,
        unit: "ms",
        ours: median(form.starts),
        ceiling: { name: form.readerName, value: median(form.readerStarts) },
        peer: { name: "etcd restart", value: median(etcdStart) },
        ...(form.target ? { targets: [{ against: "absolute", op: "<=", bound: 2000 }] } : {}),
      }),
    ),
  );
  const starts = Object.fromEntries(forms.map((f) => [f.name, { server: f.starts, reader: f.readerStarts }]));
  ctx.details.memory = { seeded, starts, etcdStart, before: gc0, after: gc1 };
}
