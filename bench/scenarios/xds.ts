import type { BenchContext } from "../lib/context.js";
import { BenchChild } from "../lib/ipc.js";
import { cpuMark, cpuSince } from "../lib/proc-stat.js";
import type { Figure, Reference } from "../lib/report.js";
import { distribution, sleep } from "../lib/stats.js";
import { registerRequest, typeName } from "../lib/workload.js";
import type { AdsOpenArgs } from "../load/ads-streams.js";
import type { FirstCallSample, FirstCallSettings } from "../load/xds-first-call.js";

type GcResult = { rss: number; heapUsed: number };

const SCENARIO = "7 xDS";
/** Issue #27: "a Register reaches an xDS client's picker in ≤ 100 ms". */
const PICKER_TARGET_MS = 100;
/** Sequence numbers of the scale part's Registers (their endpoints: `registerRequest`), apart from anything seeded. */
const SEQ_BASE = 1_000_000;

/**
 * Scenario 7, the xDS control plane (issue #27).
 *
 * Register→first call: two routers in one process (bench/load/xds-first-call.ts),
 * a grpc-js-xds channel on `xds:///<type>` and the SDK's `registry:///<type>`
 * resolver (round robin), each calling the type's backends every
 * `callEveryMs`; each round registers a fresh backend and times, from the
 * Register's acknowledgement, the first call each router delivered to it
 * (the first round, cold, is not measured). No ceiling: the resolver,
 * measured on the same Registers, is the peer; the 100 ms is the
 * target.
 *
 * At scale: `streams` lean ADS streams (bench/load/ads-streams.ts) from
 * `processes` processes, each subscribed to the ClusterLoadAssignment of one
 * of `types` types and ACKing every response; then one Register at a time,
 * each into the next type (after one unmeasured), timed from its
 * acknowledgement, as the registering process saw it, to each stream of
 * that type getting a response that lists the new endpoint (CLOCK_MONOTONIC,
 * shared by the processes: a stream may get it before the ack is read, so
 * a time can be below 0); and the registry's RSS per stream after a GC,
 * before and after the streams opened, over the streams.
 */
export async function xdsScenario(ctx: BenchContext): Promise<void> {
  ctx.add(...(await firstCall(ctx)), ...(await atScale(ctx)));
}

/** p50, p99 and max of a column; a round not seen within the wait counts as infinitely late. */
function column(values: readonly (number | null)[]) {
  const ms = values.map((v) => v ?? Infinity);
  return { ...distribution(ms), missed: ms.filter((v) => v === Infinity).length };
}

async function firstCall(ctx: BenchContext): Promise<Figure[]> {
  const p = ctx.params.xds;
  const reg = await ctx.startRegistry("s7-first-call", { store: "memory", healthChecks: false });
  const driver = BenchChild.start("s7-routers", "load/xds-first-call.ts");
  await driver.ready;
  const settings: FirstCallSettings = { registry: reg.address, serviceType: "xds-first-call", standing: p.standing, callEveryMs: p.callEveryMs };
  await driver.request("setup", settings);
  ctx.log(`scenario 7: Register→first call through xds:/// and registry:///, ${p.rounds} rounds`);
  const samples: FirstCallSample[] = [];
  // Round 0 is not measured: it runs every path (Register, both pushes, a new subchannel) for the first time, cold.
  for (let r = 0; r <= p.rounds; r++) {
    const sample = await driver.request<FirstCallSample>("round", { timeoutMs: 5000 });
    if (r > 0) samples.push(sample);
    await sleep(20 + Math.random() * 30);
  }
  const errors = await driver.request<Record<string, number>>("errors");
  await driver.stop();
  await reg.child.stop();

  const xds = column(samples.map((s) => s.xdsMs));
  const resolver = column(samples.map((s) => s.resolverMs));
  const c = `Register→first call, ${samples.length} rounds, ${p.standing} standing, a call every ${p.callEveryMs} ms`;
  const peer = (value: number): Reference => ({ name: "registry:/// resolver", value });
  const figures: Figure[] = [
    { scenario: SCENARIO, case: c, metric: "xds:/// ack→first call p50", unit: "ms", ours: xds.p50, peer: peer(resolver.p50), detail: { xds, resolver, errors, samples } },
    {
      scenario: SCENARIO,
      case: c,
      metric: "xds:/// ack→first call p99",
      unit: "ms",
      ours: xds.p99,
      peer: peer(resolver.p99),
      targets: [{ against: "absolute", op: "<=", bound: PICKER_TARGET_MS }],
    },
    { scenario: SCENARIO, case: c, metric: "xds:/// ack→first call max", unit: "ms", ours: xds.max, peer: peer(resolver.max) },
  ];
  if (xds.missed + resolver.missed > 0) {
    figures.push({ scenario: SCENARIO, case: c, metric: "not reached within 5 s (xds, resolver)", unit: "rounds", ours: xds.missed, peer: { name: "registry:/// resolver", value: resolver.missed } });
  }
  ctx.details.xdsFirstCall = { settings: p, xds, resolver, errors, samples };
  return figures;
}

/** Collects each round's arrival reports from the ADS processes. */
class ArrivalTracker {
  private readonly reports = new Map<number, bigint[][]>();
  private readonly waiters = new Map<number, { need: number; resolve: (arrivals: bigint[]) => void }>();

  constructor(workers: readonly BenchChild[]) {
    for (const w of workers) {
      w.on("arrived", (data) => {
        const d = data as { round: number; arrivals: string[] };
        const list = this.reports.get(d.round) ?? [];
        list.push(d.arrivals.map(BigInt));
        this.reports.set(d.round, list);
        this.check(d.round);
      });
    }
  }

  /** Resolves with every stream's arrival once `processes` reports for `round` are in. */
  expect(round: number, processes: number, timeoutMs: number): Promise<bigint[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(round);
        reject(new Error(`Register ${round} did not reach every stream of its type within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(round, {
        need: processes,
        resolve: (arrivals) => {
          clearTimeout(timer);
          resolve(arrivals);
        },
      });
      this.check(round);
    });
  }

  private check(round: number): void {
    const waiter = this.waiters.get(round);
    const list = this.reports.get(round);
    if (!waiter || (list?.length ?? 0) < waiter.need) return;
    this.waiters.delete(round);
    this.reports.delete(round);
    waiter.resolve((list ?? []).flat());
  }
}

async function atScale(ctx: BenchContext): Promise<Figure[]> {
  const p = ctx.params.xds;
  const types = Array.from({ length: p.types }, (_, i) => typeName(i));
  // Room above the measured streams for the warm-up ones (serve's default allows exactly 10,000).
  const reg = await ctx.startRegistry("s7-ads", { store: "memory", healthChecks: false, maxXdsStreams: p.streams + p.types }, ["--expose-gc"]);
  await reg.child.request("seed", types.map((serviceType) => ({ serviceType, count: p.perType })));
  const workers = Array.from({ length: p.processes }, (_, i) => BenchChild.start(`s7-ads-${i}`, "load/ads-streams.ts"));
  await Promise.all(workers.map((w) => w.ready));
  const tracker = new ArrivalTracker(workers);
  // One stream on every type first, not counted: the envoy protos load and every type's resources get built.
  await workers[0]?.request("warm", { target: reg.address, types });
  await sleep(500);
  const before = await reg.child.request<GcResult>("gc");
  const perProcess = p.streams / p.processes;
  ctx.log(`scenario 7: ${p.streams} ADS streams from ${p.processes} processes, ${p.perConnection} per connection, on ${p.types} types`);
  const opened = await Promise.all(
    workers.map((w, i) => {
      const args: AdsOpenArgs = { target: reg.address, streams: perProcess, perConnection: p.perConnection, types, first: i * perProcess };
      return w.request<{ openMs: number; streams: number; connections: number }>("open", args, 600_000);
    }),
  );
  await sleep(1000);
  const after = await reg.child.request<GcResult>("gc");

  ctx.log(`scenario 7: ${p.registers} Registers, one at a time, each into the next type`);
  const toStream: number[] = [];
  const toType: number[] = [];
  let cpu = cpuMark(reg.child.pid);
  // Register 0 is not measured: the first one runs the Register and push paths cold.
  for (let r = 0; r <= p.registers; r++) {
    if (r === 1) cpu = cpuMark(reg.child.pid);
    const type = types[r % types.length] as string;
    const seq = SEQ_BASE + r;
    const request = registerRequest(type, seq);
    const waiting = await Promise.all(workers.map((w) => w.request<{ waiting: number }>("expect", { round: r, type, host: request.host, port: request.port })));
    const arrived = tracker.expect(r, waiting.filter((w) => w.waiting > 0).length, 30_000);
    const ack = BigInt(await ctx.load.request<string>("fanoutTrigger", { system: "registry", target: reg.address, channel: type, seq }));
    const ms = (await arrived).map((at) => Number(at - ack) / 1e6);
    if (r > 0) {
      toStream.push(...ms);
      toType.push(Math.max(...ms));
    }
    await sleep(5 + Math.random() * 10);
  }
  const used = cpuSince(cpu);
  const closed = await Promise.all(workers.map((w) => w.request<{ failure: string | null }>("close")));
  await Promise.all(workers.map((w) => w.stop()));
  await reg.child.stop();
  const failure = closed.find((c) => c.failure)?.failure;
  if (failure) throw new Error(`scenario 7: an ADS stream failed: ${failure}`);

  const stream = distribution(toStream);
  const type = distribution(toType);
  const connections = opened.reduce((n, o) => n + o.connections, 0);
  const c = `${p.streams.toLocaleString("en-US")} ADS streams, ${p.processes} proc, ${connections} conn, ${p.types} types`;
  const memory = {
    streams: p.streams,
    rssPerStream: (after.rss - before.rss) / p.streams,
    heapPerStream: (after.heapUsed - before.heapUsed) / p.streams,
    before,
    after,
  };
  ctx.details.xdsScale = { settings: p, stream, type, opened, memory, serverCpuSeconds: used.cpuSeconds };
  return [
    { scenario: SCENARIO, case: c, metric: "ack→stream has it p50", unit: "ms", ours: stream.p50, detail: { stream, type } },
    { scenario: SCENARIO, case: c, metric: "ack→stream has it p99", unit: "ms", ours: stream.p99 },
    { scenario: SCENARIO, case: c, metric: `ack→all ${p.streams / p.types} of its type p99`, unit: "ms", ours: type.p99 },
    { scenario: SCENARIO, case: c, metric: "server CPU/Register", unit: "µs", ours: (used.cpuSeconds * 1e6) / p.registers },
    { scenario: SCENARIO, case: c, metric: "RSS/xDS stream", unit: "bytes", ours: memory.rssPerStream, detail: memory },
  ];
}
