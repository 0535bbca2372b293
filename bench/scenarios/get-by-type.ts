import type { LoopResult } from "../load/closed-loop.js";
import type { BenchContext } from "../lib/context.js";
import { typeName } from "../lib/workload.js";

/**
 * Scenario 2: GetByType over 1,000 types of 100 instances (all healthy; health
 * checks off). Ceiling: a handler answering the registry's own answer for one
 * type, pre-encoded. Peer: an etcd range over a prefix holding 100 records of
 * the same fields.
 */
export async function getByTypeScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.getByType;
  const types = Array.from({ length: p.types }, (_, i) => typeName(i));
  ctx.log(`scenario 2: seeding ${p.types} types x ${p.perType} instances into the registry and etcd`);
  const reg = await ctx.startRegistry("s2-get-by-type", { store: "memory", healthChecks: false });
  const [seeded, etcdSeeded] = await Promise.all([
    reg.child.request<{ ms: number; size: number }>("seed", types.map((t) => ({ serviceType: t, count: p.perType })), 300_000),
    ctx.load.request<{ keys: number; ms: number }>("etcdSeed", { endpoint: ctx.etcd.endpoint, types, perType: p.perType }, 300_000),
  ]);
  const payload = await ctx.load.request<string>("getByTypeBytes", { address: reg.address, serviceType: typeName(0) });
  const { bytes } = await ctx.ceiling.request<{ bytes: number }>("setGetByTypePayload", { base64: payload });

  const timing = { warmupMs: p.warmupMs, durationMs: p.durationMs, concurrency: p.concurrency };
  ctx.log(`scenario 2: GetByType, concurrency ${p.concurrency} (answer ${bytes} bytes)`);
  const ceiling = await ctx.load.request<LoopResult>("grpcGetByType", {
    address: ctx.ceilingAddress, types, expect: p.perType, serverPid: ctx.ceiling.pid, ...timing,
  });
  const ours = await ctx.load.request<LoopResult>("grpcGetByType", {
    address: reg.address, types, expect: p.perType, serverPid: reg.child.pid, ...timing,
  });
  const etcd = await ctx.load.request<LoopResult>("etcdRange", {
    endpoint: ctx.etcd.endpoint, types, expect: p.perType, serverPid: ctx.etcd.pid, ...timing,
  });
  const caseName = `${p.perType}/type, ${p.types} types, c=${p.concurrency}`;
  ctx.add(
    {
      scenario: "2 GetByType",
      case: caseName,
      metric: "throughput",
      unit: "calls/s",
      ours: ours.opsPerSec,
      ceiling: { name: "pre-encoded", value: ceiling.opsPerSec },
      peer: { name: "etcd range", value: etcd.opsPerSec },
      targets: [{ against: "peer", op: ">=", bound: 3 }],
      detail: { latencyMs: ours.latencyMs, clientCpuPerOpUs: ours.clientCpuPerOpUs },
    },
    {
      scenario: "2 GetByType",
      case: caseName,
      metric: "server CPU/call",
      unit: "µs",
      ours: ours.serverCpuPerOpUs,
      ceiling: { name: "pre-encoded", value: ceiling.serverCpuPerOpUs },
      peer: { name: "etcd range", value: etcd.serverCpuPerOpUs },
      targets: [{ against: "ceiling", op: "<=", bound: 1.2 }],
    },
  );
  ctx.details.getByType = { answerBytes: bytes, seeded, etcdSeeded, ours, ceiling, etcd };
  await reg.child.stop();
}
