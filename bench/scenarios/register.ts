import type { LoopResult } from "../load/closed-loop.js";
import type { BenchContext, RegistryProcess } from "../lib/context.js";
import type { Figure, Target } from "../lib/report.js";
import { median } from "../lib/stats.js";
import { measureInterleaved, pooledDetail, type Pooled } from "../lib/pooled-windows.js";

/**
 * Each store's targets (issue #24), on the composition `serve` starts:
 * server CPU per call against the no-op at the concurrencies in
 * `CPU_TARGET_AT` (at c=1 grpc-js's fixed cost per call dominates: reported,
 * not judged), and throughput against etcd registering with a lease per instance.
 */
const STORES = [
  { name: "memory", config: { store: "memory" as const }, cpu: 1.5, throughput: 1.5 },
  { name: "sqlite normal", config: { store: "sqlite" as const, sync: "normal" as const }, cpu: 1.5, throughput: 1.5 },
  { name: "sqlite full", config: { store: "sqlite" as const, sync: "full" as const }, cpu: undefined, throughput: 1.0 },
];
const CPU_TARGET_AT = new Set([16, 64]);
/** The peer: etcd as etcd-based registries register, a lease granted per instance, then the put under it. */
const ETCD = "etcd, lease per instance";
/** etcd's floor, printed beside the peer: the put alone. */
const ETCD_PUT = "etcd bare put";

/** A server the Register load runs against: the load worker's op and its arguments. */
interface Subject {
  readonly name: string;
  readonly op: "grpcRegister" | "etcdRegister" | "etcdBarePut";
  readonly target: { readonly address: string; readonly serverPid: number } | { readonly endpoint: string; readonly serverPid: number };
}

/** Every subject at one concurrency, in interleaved rounds of `durationMs` windows (see `measureInterleaved`). */
function interleaved(ctx: BenchContext, subjects: readonly Subject[], concurrency: number, durationMs: number): Promise<Map<string, Pooled>> {
  const p = ctx.params.register;
  return measureInterleaved(subjects, p.rounds, (s) =>
    ctx.load.request<LoopResult>(s.op, { ...s.target, serviceType: "bench-svc", concurrency, warmupMs: p.warmupMs, durationMs }),
  );
}

/** Each round's CPU/call ratio of `ours` to `ceiling` (windows of round i pair up): the spread behind the pooled ratio. */
function roundRatios(ours: Pooled, ceiling: Pooled): { median: number; each: number[] } {
  const each = ours.windows.map((w, i) => w.serverCpuPerOpUs / (ceiling.windows[i] as LoopResult).serverCpuPerOpUs);
  return { median: median(each), each };
}

/**
 * Scenario 1: Register at concurrency 1, 16, 64 against the memory store and
 * SQLite (normal and full sync), each in the composition `serve` starts
 * (metrics on). Ceiling: the no-op handler. Peer: etcd lease grant + put,
 * with etcd's bare put beside it. Health checks are off so the registered
 * (fake) addresses are not probed.
 */
export async function registerScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.register;
  // The floors, in a ceiling process of their own that keeps every request
  // (see ceiling-server.ts): the no-op, and per sync mode the no-op answer
  // once bare better-sqlite3 has written the call's rows.
  const floors = ctx.startCeiling("s1-floors", ["--keep-requests"]);
  const registries = await Promise.all(
    STORES.map((s) => {
      const name = `s1-${s.name.replace(" ", "-")}`;
      return ctx.startRegistry(name, { ...s.config, dataDir: ctx.dir(name), healthChecks: false });
    }),
  );
  const floorPort = (await floors.ready).port;
  const sqliteNoops = new Map<string, string>();
  for (const sync of ["normal", "full"] as const) {
    const { port } = await floors.request<{ port: number }>("startSqliteNoop", { path: `${ctx.dir(`s1-bare-${sync}`)}/bare.db`, sync });
    sqliteNoops.set(sync, `127.0.0.1:${port}`);
  }
  /** Each store's floor: the subject measured, its label in the table, where it listens. */
  const floorOf = (store: (typeof STORES)[number]): { subject: string; label: string; address: string } =>
    store.config.store === "memory"
      ? { subject: "no-op + kept", label: "no-op + kept requests", address: `127.0.0.1:${floorPort}` }
      : { subject: `no-op + SQLite ${store.config.sync}`, label: "no-op + SQLite + kept", address: sqliteNoops.get(store.config.sync) as string };
  const subjects: Subject[] = [
    { name: "no-op", op: "grpcRegister", target: { address: ctx.ceilingAddress, serverPid: ctx.ceiling.pid } },
    { name: ETCD, op: "etcdRegister", target: { endpoint: ctx.etcd.endpoint, serverPid: ctx.etcd.pid } },
    { name: ETCD_PUT, op: "etcdBarePut", target: { endpoint: ctx.etcd.endpoint, serverPid: ctx.etcd.pid } },
    ...STORES.map((s, i): Subject => {
      const reg = registries[i] as RegistryProcess;
      return { name: s.name, op: "grpcRegister", target: { address: reg.address, serverPid: reg.child.pid } };
    }),
    ...STORES.map((s): Subject => {
      const { subject, address } = floorOf(s);
      return { name: subject, op: "grpcRegister", target: { address, serverPid: floors.pid } };
    }),
  ];
  const raw: Record<string, unknown> = {};
  // An unmeasured burst against every server first. A fresh process spends
  // its first seconds compiling its hot code (V8's optimising compiler runs on
  // a thread of the server, so its CPU counts as the server's), the more the
  // more code a call runs; without this the first window, c=1, paid for it:
  // ours read 2.0x the no-op there against ~1.5x once warm.
  ctx.log("scenario 1: JIT warm-up of every server, unmeasured");
  for (const s of subjects) {
    await ctx.load.request<LoopResult>(s.op, { ...s.target, serviceType: "bench-warmup", concurrency: 16, warmupMs: 0, durationMs: p.jitWarmupMs });
  }
  for (const { concurrency, durationMs } of p.concurrencies) {
    ctx.log(`scenario 1: Register, concurrency ${concurrency}, ${p.rounds} interleaved round(s)`);
    const groupsBefore = await Promise.all(registries.map((r) => r.child.request<{ commitGroups: number; revision: number }>("storeStats")));
    const results = await interleaved(ctx, subjects, concurrency, durationMs);
    const noop = results.get("no-op") as Pooled;
    const etcd = results.get(ETCD) as Pooled;
    const etcdPut = results.get(ETCD_PUT) as Pooled;
    raw[`c${concurrency} no-op`] = pooledDetail(noop);
    raw[`c${concurrency} ${ETCD}`] = pooledDetail(etcd);
    raw[`c${concurrency} ${ETCD_PUT}`] = pooledDetail(etcdPut);
    // The run's own noise, shown beside the figures it moves: the same no-op
    // server's dearest window over its cheapest (no code changes between them).
    const noopWindows = noop.windows.map((w) => w.serverCpuPerOpUs);
    if (noopWindows.length > 1) {
      ctx.add({
        scenario: "1 Register",
        case: `no-op's own windows, c=${concurrency}`,
        metric: "server CPU/call, dearest",
        unit: "µs",
        ours: Math.max(...noopWindows),
        ceiling: { name: "its cheapest window", value: Math.min(...noopWindows) },
        detail: { windows: noopWindows },
      });
    }
    for (const [i, s] of STORES.entries()) {
      const r = results.get(s.name) as Pooled;
      const after = await (registries[i] as RegistryProcess).child.request<{ commitGroups: number; revision: number }>("storeStats");
      const before = groupsBefore[i] as { commitGroups: number; revision: number };
      const groups = after.commitGroups - before.commitGroups;
      const vsNoop = roundRatios(r, noop);
      raw[`c${concurrency} ${s.name}`] = {
        ...pooledDetail(r),
        cpuRatioPerRound: vsNoop.each,
        // Registrations over SQLite transactions: how many calls one commit carried.
        ...(groups > 0 ? { meanCommitGroup: (after.revision - before.revision) / groups } : {}),
      };
      const caseName = `${s.name}, c=${concurrency}`;
      const throughputTargets: Target[] = [{ against: "peer", op: ">=", bound: s.throughput }];
      const cpuTargets: Target[] = s.cpu && CPU_TARGET_AT.has(concurrency) ? [{ against: "ceiling", op: "<=", bound: s.cpu }] : [];
      const figures: Figure[] = [
        {
          scenario: "1 Register",
          case: caseName,
          metric: "throughput",
          unit: "calls/s",
          ours: r.opsPerSec,
          ceiling: { name: "no-op", value: noop.opsPerSec },
          peer: { name: ETCD, value: etcd.opsPerSec },
          targets: throughputTargets,
          detail: { clientCpuPerOpUs: r.clientCpuPerOpUs },
        },
        {
          scenario: "1 Register",
          case: caseName,
          metric: "throughput",
          unit: "calls/s",
          ours: r.opsPerSec,
          peer: { name: ETCD_PUT, value: etcdPut.opsPerSec },
        },
        {
          scenario: "1 Register",
          case: caseName,
          metric: "server CPU/call",
          unit: "µs",
          ours: r.serverCpuPerOpUs,
          ceiling: { name: "no-op", value: noop.serverCpuPerOpUs },
          peer: { name: ETCD, value: etcd.serverCpuPerOpUs },
          targets: cpuTargets,
          detail: { cpuRatioPerRound: vsNoop },
        },
      ];
      // What a registry cannot avoid at this concurrency, inside a gRPC server:
      // keeping what it registered (and, for SQLite, bare better-sqlite3
      // writing the same rows, grouped per event-loop turn as the store groups
      // them). The gap between this row and 1.0 is ours; the rest is not.
      const { subject, label } = floorOf(s);
      const floor = results.get(subject) as Pooled;
      raw[`c${concurrency} ${subject}`] = pooledDetail(floor);
      figures.push({
        scenario: "1 Register",
        case: caseName,
        metric: "server CPU/call",
        unit: "µs",
        ours: r.serverCpuPerOpUs,
        ceiling: { name: label, value: floor.serverCpuPerOpUs },
        detail: { cpuRatioPerRound: roundRatios(r, floor) },
      });
      ctx.add(...figures);
    }
  }
  ctx.details.register = raw;
  await floors.request("stopSqliteNoops");
  await Promise.all([floors, ...registries.map((r) => r.child)].map((child) => child.stop()));
}
