import { mergeLoops, type LoopOptions, type LoopResult } from "../load/closed-loop.js";
import type { BenchContext, RegistryProcess } from "../lib/context.js";
import { BenchChild } from "../lib/ipc.js";
import { measureInterleaved, pooledDetail, type Pooled } from "../lib/pooled-windows.js";
import { typeName } from "../lib/workload.js";

/**
 * Load processes reading at once, the calls in flight split between them.
 * One Node process, even on the raw HTTP/2 client, tops out near a core
 * before the registry does; etcd saturates the machine either way.
 */
const LOAD_PROCESSES = 2;

/**
 * Scenario 2: GetByType over 1,000 types of 100 instances (all healthy; health
 * checks off). Ceiling: a handler answering the registry's own answer for one
 * type, pre-encoded. Peer: an etcd range over a prefix holding 100 records of
 * the same fields.
 */
export async function getByTypeScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.getByType;
  if (p.concurrency % LOAD_PROCESSES !== 0) {
    throw new Error(`GetByType concurrency ${p.concurrency} does not split evenly over ${LOAD_PROCESSES} load processes`);
  }
  ctx.log(`scenario 2: seeding ${p.types} types x ${p.perType} instances into the registry and etcd`);
  const extraLoads = Array.from({ length: LOAD_PROCESSES - 1 }, (_, i) => BenchChild.start(`load-s2-${i + 2}`, "load/load-worker.ts"));
  let reg: RegistryProcess | undefined;
  try {
    reg = await ctx.startRegistry("s2-get-by-type", { store: "memory", healthChecks: false });
    const types = Array.from({ length: p.types }, (_, i) => typeName(i));
    await measureOn(ctx, [ctx.load, ...extraLoads], reg, types);
  } finally {
    // The ceiling process serves the fan-out next: drop its 1,000 payload copies (~14 MB).
    await Promise.allSettled([...extraLoads.map((l) => l.stop()), reg?.child.stop(), ctx.ceiling.request("setGetByTypePayload", { base64: "" })]);
  }
}

async function measureOn(ctx: BenchContext, loads: readonly BenchChild[], reg: RegistryProcess, types: readonly string[]): Promise<void> {
  const p = ctx.params.getByType;
  const [seeded, etcdSeeded] = await Promise.all([
    reg.child.request<{ ms: number; size: number }>("seed", types.map((t) => ({ serviceType: t, count: p.perType })), 300_000),
    ctx.load.request<{ keys: number; ms: number }>("etcdSeed", { endpoint: ctx.etcd.endpoint, types, perType: p.perType }, 300_000),
  ]);
  const payload = await ctx.load.request<string>("getByTypeBytes", { address: reg.address, serviceType: typeName(0) });
  const { bytes } = await ctx.ceiling.request<{ bytes: number }>("setGetByTypePayload", { base64: payload, types });

  // Every load process reads every type of every system once: the servers'
  // steady state, and each client's connections and code warm before the
  // first measured loop (which is the ceiling's).
  await Promise.all(loads.map((l) => l.ready));
  const targets = [
    { system: "registry", address: ctx.ceilingAddress },
    { system: "registry", address: reg.address },
    { system: "etcd", address: ctx.etcd.endpoint },
  ];
  await Promise.all(loads.flatMap((l) => targets.map((t) => l.request("readEveryType", { ...t, types }, 120_000))));

  /** One closed loop of `p.concurrency` callers, spread over every load process, measured over one shared window. */
  const loopAcross = async (method: string, target: { serverPid: number; address?: string; endpoint?: string }): Promise<LoopResult> => {
    const startAtNs = (process.hrtime.bigint() + BigInt(p.warmupMs) * 1_000_000n).toString();
    const options: LoopOptions = {
      concurrency: p.concurrency / loads.length,
      warmupMs: p.warmupMs,
      durationMs: p.durationMs,
      serverPid: target.serverPid,
      startAtNs,
      keepLatencies: true,
    };
    return mergeLoops(await Promise.all(loads.map((l) => l.request<LoopResult>(method, { ...target, ...options, types, expect: p.perType }))));
  };
  ctx.log(`scenario 2: GetByType, concurrency ${p.concurrency} from ${loads.length} processes (answer ${bytes} bytes), ${p.rounds} interleaved round(s)`);
  const subjects = [
    { name: "ceiling", method: "grpcGetByType", target: { address: ctx.ceilingAddress, serverPid: ctx.ceiling.pid } },
    { name: "ours", method: "grpcGetByType", target: { address: reg.address, serverPid: reg.child.pid } },
    { name: "etcd", method: "etcdRange", target: { endpoint: ctx.etcd.endpoint, serverPid: ctx.etcd.pid } },
  ];
  const pooled = await measureInterleaved(subjects, p.rounds, (s) => loopAcross(s.method, s.target));
  const [ceiling, ours, etcd] = ["ceiling", "ours", "etcd"].map((name) => pooled.get(name) as Pooled) as [Pooled, Pooled, Pooled];
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
  ctx.details.getByType = { answerBytes: bytes, seeded, etcdSeeded, ours: pooledDetail(ours), ceiling: pooledDetail(ceiling), etcd: pooledDetail(etcd) };
}
