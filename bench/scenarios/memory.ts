import { join } from "node:path";
import type { BenchContext } from "../lib/context.js";
import { startEtcd } from "../lib/etcd.js";
import { BenchChild } from "../lib/ipc.js";
import { rssBytes } from "../lib/proc-stat.js";
import { median, sleep } from "../lib/stats.js";
import { typeName } from "../lib/workload.js";

type GcResult = { heapUsed: number; size?: number };

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

  ctx.log(`scenario 5: RSS with ${n} instances`);
  const reg = await ctx.startRegistry("s5-memory", config, ["--expose-gc"]);
  const gc0 = await reg.child.request<GcResult>("gc");
  const rss0 = rssBytes(reg.child.pid);
  const types = Array.from({ length: p.types }, (_, i) => typeName(i));
  const seeded = await reg.child.request<{ ms: number }>("seed", types.map((t) => ({ serviceType: t, count: p.perType })), 300_000);
  await sleep(200);
  const gc1 = await reg.child.request<GcResult>("gc");
  const oursRss = (rssBytes(reg.child.pid) - rss0) / n;
  await reg.child.stop();

  const bare = BenchChild.start("memory-ceiling", "load/memory-ceiling.ts", [], { nodeFlags: ["--expose-gc"] });
  await bare.ready;
  await bare.request("gc");
  const bareRss0 = rssBytes(bare.pid);
  await bare.request("hold", { count: n });
  await bare.request("gc");
  const bareRss = (rssBytes(bare.pid) - bareRss0) / n;
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
  await ctx.load.request("etcdSeed", { endpoint: etcd.endpoint, types, perType: p.perType }, 300_000);
  await sleep(1000);
  const etcdRss = (rssBytes(etcd.pid) - etcdRss0) / n;
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
      metric: "RSS/instance",
      unit: "bytes",
      ours: oursRss,
      ceiling: { name: "bare Map", value: bareRss },
      peer: { name: "etcd/key", value: etcdRss },
      targets: [{ against: "absolute", op: "<=", bound: 1024 }],
      detail: { heapPerInstance: (gc1.heapUsed - gc0.heapUsed) / n },
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
  ctx.details.memory = { seeded, oursStart, oursStoreOpen, bareStart, etcdStart, heapBefore: gc0.heapUsed, heapAfter: gc1.heapUsed };
}
