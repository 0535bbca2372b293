import type { LoopResult } from "../load/closed-loop.js";
import type { BenchContext, RegistryProcess } from "../lib/context.js";
import type { Figure, Target } from "../lib/report.js";

const STORES = [
  { name: "memory", config: { store: "memory" as const }, cpu: 1.3, throughput: 1.5 },
  { name: "sqlite normal", config: { store: "sqlite" as const, sync: "normal" as const }, cpu: 1.6, throughput: 1.5 },
  { name: "sqlite full", config: { store: "sqlite" as const, sync: "full" as const }, cpu: undefined, throughput: 1.0 },
];

function detail(r: LoopResult): Record<string, unknown> {
  return {
    ops: r.ops,
    seconds: r.wallSeconds,
    errors: r.errors,
    latencyMs: r.latencyMs,
    clientCpuPerOpUs: r.clientCpuPerOpUs,
    serverCpuSeconds: r.serverCpuSeconds,
  };
}

/**
 * Scenario 1: Register at concurrency 1, 16, 64 against the memory store and
 * SQLite (normal and full sync). Ceiling: the no-op handler. Peer: etcd lease
 * grant + put. Health checks are off so the registered (fake) addresses are
 * not probed. All targets are measured at each concurrency in turn, so
 * machine drift hits them alike.
 */
export async function registerScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.register;
  const registries: RegistryProcess[] = [];
  for (const s of STORES) {
    registries.push(
      await ctx.startRegistry(`s1-${s.name.replace(" ", "-")}`, { ...s.config, dataDir: ctx.dir(`s1-${s.name.replace(" ", "-")}`), healthChecks: false }),
    );
  }
  // The "no-op + SQLite" ceiling of each sync mode: the no-op answer after bare
  // better-sqlite3 has written the call's rows, in the ceiling process.
  const sqliteNoops = new Map<string, string>();
  for (const sync of ["normal", "full"] as const) {
    const { port } = await ctx.ceiling.request<{ port: number }>("startSqliteNoop", { path: `${ctx.dir(`s1-bare-${sync}`)}/bare.db`, sync });
    sqliteNoops.set(sync, `127.0.0.1:${port}`);
  }
  const timing = { warmupMs: p.warmupMs, durationMs: p.durationMs };
  const raw: Record<string, unknown> = {};
  // An unmeasured burst against every server first. A fresh process spends
  // its first seconds compiling its hot code (V8's optimising compiler runs on
  // a thread of the server, so its CPU counts as the server's), the more the
  // more code a call runs; without this the first window, c=1, paid for it:
  // ours read 2.0x the no-op there against ~1.5x once warm.
  ctx.log("scenario 1: JIT warm-up of every server, unmeasured");
  const warmup = { serviceType: "bench-warmup", concurrency: 16, warmupMs: 0, durationMs: p.jitWarmupMs };
  await ctx.load.request<LoopResult>("grpcRegister", { address: ctx.ceilingAddress, serverPid: ctx.ceiling.pid, ...warmup });
  await ctx.load.request<LoopResult>("etcdRegister", { endpoint: ctx.etcd.endpoint, serverPid: ctx.etcd.pid, ...warmup });
  const warmupTargets = [
    ...[...sqliteNoops.values()].map((address) => ({ address, serverPid: ctx.ceiling.pid })),
    ...registries.map((r) => ({ address: r.address, serverPid: r.child.pid })),
  ];
  for (const target of warmupTargets) await ctx.load.request<LoopResult>("grpcRegister", { ...target, ...warmup });
  for (const concurrency of p.concurrencies) {
    ctx.log(`scenario 1: Register, concurrency ${concurrency}`);
    const noop = await ctx.load.request<LoopResult>("grpcRegister", {
      address: ctx.ceilingAddress, serviceType: "bench-svc", concurrency, serverPid: ctx.ceiling.pid, ...timing,
    });
    const etcd = await ctx.load.request<LoopResult>("etcdRegister", {
      endpoint: ctx.etcd.endpoint, serviceType: "bench-svc", concurrency, serverPid: ctx.etcd.pid, ...timing,
    });
    raw[`c${concurrency} no-op`] = detail(noop);
    raw[`c${concurrency} etcd`] = detail(etcd);
    for (const [i, s] of STORES.entries()) {
      const reg = registries[i] as RegistryProcess;
      const before = await reg.child.request<{ commitGroups: number; revision: number }>("storeStats");
      const r = await ctx.load.request<LoopResult>("grpcRegister", {
        address: reg.address, serviceType: "bench-svc", concurrency, serverPid: reg.child.pid, ...timing,
      });
      const after = await reg.child.request<{ commitGroups: number; revision: number }>("storeStats");
      const groups = after.commitGroups - before.commitGroups;
      raw[`c${concurrency} ${s.name}`] = { ...detail(r), ...(groups > 0 ? { meanCommitGroup: (after.revision - before.revision) / groups } : {}) };
      const caseName = `${s.name}, c=${concurrency}`;
      const throughputTargets: Target[] = [{ against: "peer", op: ">=", bound: s.throughput }];
      const cpuTargets: Target[] = s.cpu ? [{ against: "ceiling", op: "<=", bound: s.cpu }] : [];
      const figures: Figure[] = [
        {
          scenario: "1 Register",
          case: caseName,
          metric: "throughput",
          unit: "calls/s",
          ours: r.opsPerSec,
          ceiling: { name: "no-op", value: noop.opsPerSec },
          peer: { name: "etcd", value: etcd.opsPerSec },
          targets: throughputTargets,
          detail: { latencyMs: r.latencyMs, clientCpuPerOpUs: r.clientCpuPerOpUs },
        },
        {
          scenario: "1 Register",
          case: caseName,
          metric: "server CPU/call",
          unit: "µs",
          ours: r.serverCpuPerOpUs,
          ceiling: { name: "no-op", value: noop.serverCpuPerOpUs },
          peer: { name: "etcd", value: etcd.serverCpuPerOpUs },
          targets: cpuTargets,
        },
      ];
      if (s.config.store === "sqlite") {
        // What SQLite itself costs per registration at this concurrency, inside
        // a gRPC server: the no-op plus bare better-sqlite3 writing the same
        // rows, grouped per event-loop turn as the store groups them. The gap
        // between this row and 1.0 is ours; the rest is SQLite's.
        const floor = await ctx.load.request<LoopResult>("grpcRegister", {
          address: sqliteNoops.get(s.config.sync) as string, serviceType: "bench-svc", concurrency, serverPid: ctx.ceiling.pid, ...timing,
        });
        raw[`c${concurrency} no-op + SQLite ${s.config.sync}`] = detail(floor);
        figures.push({
          scenario: "1 Register",
          case: caseName,
          metric: "server CPU/call",
          unit: "µs",
          ours: r.serverCpuPerOpUs,
          ceiling: { name: "no-op + SQLite", value: floor.serverCpuPerOpUs },
        });
      }
      ctx.add(...figures);
    }
  }
  ctx.details.register = raw;
  await ctx.ceiling.request("stopSqliteNoops");
  await Promise.all(registries.map((r) => r.child.stop()));
}
