import { join } from "node:path";
import type { BenchContext } from "../lib/context.js";
import { startEtcd } from "../lib/etcd.js";
import { BenchChild } from "../lib/ipc.js";
import { rssBytes } from "../lib/proc-stat.js";
import { median, sleep } from "../lib/stats.js";
import { typeName } from "../lib/workload.js";

type GcResult = { heapUsed: number; heapTotal: number; external: number; rss: number; size?: number };

/**
 * Scenario 5: resident memory per instance with 100,000 instances registered
 * (SQLite store, health checks off, garbage collected before each reading),
 * and the start-up time of a registry process whose SQLite data holds them
 * (fork until it serves gRPC; median of 3 in full mode). Ceiling: a bare
 * process holding the same records in one Map, and one reading the same rows
 * before it reports ready. Peer: etcd holding the same records as keys (no
 * leases), and etcd restarting on that data.
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
  const oursStart: number[] = [];
  const oursStoreOpen: number[] = [];
  const bareStart: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const again = await ctx.startRegistry(`s5-restart-${i}`, config);
    const ready = await again.child.ready;
    if (ready.instances !== n) throw new Error(`restarted registry holds ${ready.instances} instances, not ${n}`);
    oursStart.push(again.child.readyAfterMs);
    oursStoreOpen.push(again.startMs);
    await again.child.stop();
    const reader = BenchChild.start("startup-ceiling", "load/memory-ceiling.ts", [JSON.stringify({ dbPath: join(dataDir, "registry.db") })]);
    await reader.ready;
    bareStart.push(reader.readyAfterMs);
    await reader.stop();
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
    {
      scenario: "5 Memory",
      case: caseName,
      metric: "start-up",
      unit: "ms",
      ours: median(oursStart),
      ceiling: { name: "node+tsx reading rows", value: median(bareStart) },
      peer: { name: "etcd restart", value: median(etcdStart) },
      targets: [{ against: "absolute", op: "<=", bound: 2000 }],
      detail: { registryStartMs: median(oursStoreOpen) },
    },
  );
  ctx.details.memory = { seeded, oursStart, oursStoreOpen, bareStart, etcdStart, before: gc0, after: gc1 };
}
