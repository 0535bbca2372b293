import type { Address, GetLoopClient, GetLoopResult } from "../load/http-get-loop.js";
import type { ProbeQueueCost } from "../load/probe-queue-cost.js";
import type { BenchContext, BenchParams } from "../lib/context.js";
import { BenchChild } from "../lib/ipc.js";
import { cpuMark, cpuSince } from "../lib/proc-stat.js";
import { median, sleep } from "../lib/stats.js";
import type { SeedBlock } from "../servers/registry-server.js";

interface LagWindow {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

type Probing = BenchParams["probing"];

/** One instance at each address (an address holds one instance). */
function blocksFor(addresses: readonly Address[], instances: number): SeedBlock[] {
  if (instances > addresses.length) throw new Error(`${instances} instances need as many addresses; the farms have ${addresses.length}`);
  return addresses.slice(0, instances).map(({ host, port }) => ({ serviceType: "probed", host, port, count: 1 }));
}

/** Addresses per farm process: its listening sockets and the connections to them stay well under the open-file limit. */
const ADDRESSES_PER_FARM = 2500;

/** Farm processes serving `healthy` and `blackhole` addresses between them. */
async function startFarms(healthy: number, blackhole: number) {
  const farms = Math.max(1, Math.ceil((healthy + blackhole) / ADDRESSES_PER_FARM));
  const part = (total: number, i: number): number => Math.floor(total / farms) + (i < total % farms ? 1 : 0);
  const children = Array.from({ length: farms }, (_, i) =>
    BenchChild.start<{ healthyAddresses: Address[]; blackholeAddresses: Address[] }>(
      `health-farm-${i}`,
      "servers/health-farm.ts",
      [JSON.stringify({ healthy: part(healthy, i), blackhole: part(blackhole, i), net: 10 + i })],
    ),
  );
  const ready = await Promise.all(children.map((c) => c.ready));
  return {
    healthyAddresses: ready.flatMap((r) => r.healthyAddresses),
    blackholeAddresses: ready.flatMap((r) => r.blackholeAddresses),
    counters: () => Promise.all(children.map((c) => c.request("counters"))),
    stop: () => Promise.all(children.map((c) => c.stop())),
  };
}

/**
 * The schedule run: every instance probed once per interval, 10% of them
 * blackholed. Lag is the registry's own figure (probe start minus due time,
 * over its last 1,024 probes), sampled every 100 ms; p99 is the worst
 * window's p99, p50 the median window's.
 */
async function scheduleRun(ctx: BenchContext, p: Probing, healthyAddresses: Address[], blackholeAddresses: Address[]) {
  const blackholed = Math.round(p.instances / 10);
  const reg = await ctx.startRegistry("s4-schedule", {
    store: "memory",
    healthChecks: true,
    healthCheckInterval: p.intervalMs,
    healthCheckTTL: p.ttlMs,
    healthCheckMaxRequests: p.maxRequests,
  });
  ctx.log(`scenario 4: probing ${p.instances} instances (${blackholed} blackholed) every ${p.intervalMs} ms, max ${p.maxRequests} in flight`);
  await reg.child.request("seed", [...blocksFor(healthyAddresses, p.instances - blackholed), ...blocksFor(blackholeAddresses, blackholed)], 120_000);
  // First probes come within 1 s of registering; then let one full interval pass.
  await sleep(p.intervalMs + 1000);
  await reg.child.request("startLagSampling", { periodMs: 100 });
  const before = await reg.child.request<{ probes: number }>("probeCounters");
  const cpu = cpuMark(reg.child.pid);
  await sleep(p.measureMs);
  const after = await reg.child.request<{ probes: number }>("probeCounters");
  const used = cpuSince(cpu);
  const windows = (await reg.child.request<LagWindow[]>("stopLagSampling")).filter((w) => w.count > 0);
  await reg.child.stop();
  const probes = after.probes - before.probes;
  return {
    lag: { p50: median(windows.map((w) => w.p50)), p99: Math.max(...windows.map((w) => w.p99)), max: Math.max(...windows.map((w) => w.max)) },
    windows: windows.length,
    probes,
    probesPerSec: probes / used.wallSeconds,
    cpuPerProbeUs: (used.cpuSeconds * 1e6) / probes,
  };
}

/**
 * The capacity run: only the healthy instances, an interval far shorter than
 * the probes can keep up with, and `capacityConcurrency` in flight, so the
 * prober runs flat out like the bare GET loop at the same concurrency.
 */
async function capacityRun(ctx: BenchContext, p: Probing, healthyAddresses: Address[]) {
  const healthy = p.instances - Math.round(p.instances / 10);
  const reg = await ctx.startRegistry("s4-capacity", {
    store: "memory",
    healthChecks: true,
    healthCheckInterval: p.capacityIntervalMs,
    healthCheckTTL: p.ttlMs,
    healthCheckMaxRequests: p.capacityConcurrency,
  });
  ctx.log(`scenario 4: prober capacity, ${healthy} healthy instances every ${p.capacityIntervalMs} ms, ${p.capacityConcurrency} in flight`);
  await reg.child.request("seed", blocksFor(healthyAddresses, healthy), 120_000);
  await sleep(Math.min(2000, p.capacityMs));
  const before = await reg.child.request<{ probes: number }>("probeCounters");
  const cpu = cpuMark(reg.child.pid);
  await sleep(p.capacityMs);
  const after = await reg.child.request<{ probes: number; failed: number }>("probeCounters");
  const used = cpuSince(cpu);
  await reg.child.stop();
  const probes = after.probes - before.probes;
  return { probes, failed: after.failed, probesPerSec: probes / used.wallSeconds, cpuPerProbeUs: (used.cpuSeconds * 1e6) / probes };
}

/**
 * Scenario 4: the registry probes 10,000 instances, each at an address of its
 * own on the loopback net (an address holds one instance), served by HTTP
 * servers in a few farm processes, 10% of them blackholes that accept and
 * never answer. healthCheckMaxRequests is raised for
 * the schedule run so the blackholed probes (each holding a slot until the
 * timeout) leave room for the rest. Ceiling: a bare keep-alive GET loop over
 * the healthy addresses at the capacity run's concurrency, on node:http (the
 * issue's ceiling, the target's) and on undici (the prober's own client).
 * The probe queue (p-queue, the user's choice) is also measured alone in the
 * load process against a bare FIFO, and what it adds is set beside a whole
 * probe's CPU from the capacity run.
 */
export async function probingScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.probing;
  const blackholed = Math.round(p.instances / 10);
  const farm = await startFarms(p.instances - blackholed, blackholed);
  const { healthyAddresses, blackholeAddresses } = farm;
  const schedule = await scheduleRun(ctx, p, healthyAddresses, blackholeAddresses);
  const capacity = await capacityRun(ctx, p, healthyAddresses);
  const bareLoop = async (client: GetLoopClient): Promise<GetLoopResult> => {
    ctx.log(`scenario 4: bare GET loop on ${client}, concurrency ${p.capacityConcurrency}`);
    return ctx.load.request<GetLoopResult>("httpGetLoop", {
      addresses: healthyAddresses,
      concurrency: p.capacityConcurrency,
      warmupMs: Math.min(1000, p.capacityMs / 2),
      durationMs: p.capacityMs,
      client,
    });
  };
  const bare = await bareLoop("node:http");
  const bareUndici = await bareLoop("undici");
  const farmCounters = await farm.counters();
  await farm.stop();
  ctx.log(`scenario 4: probe queue alone, p-queue against a bare FIFO, ${p.queueTasks} queued, ${p.capacityConcurrency} at a time`);
  const queue = await ctx.load.request<ProbeQueueCost>("probeQueueCost", {
    tasks: p.queueTasks,
    concurrency: p.capacityConcurrency,
    rounds: p.queueRounds,
  });

  const scheduled = `${p.instances} inst, 10% blackholed, every ${p.intervalMs / 1000} s`;
  const flatOut = `${p.instances - Math.round(p.instances / 10)} healthy, flat out, c=${p.capacityConcurrency}`;
  const interval = { name: "interval", value: p.intervalMs };
  const nodeLoop = (value: number) => ({ name: "bare GET loop", value });
  // The prober runs on undici: this says what is left of our own overhead.
  const undiciLoop = (value: number) => ({ name: "bare GET loop, undici", value });
  ctx.add(
    { scenario: "4 Probing", case: scheduled, metric: "lag p50", unit: "ms", ours: schedule.lag.p50, ceiling: interval },
    {
      scenario: "4 Probing",
      case: scheduled,
      metric: "lag p99",
      unit: "ms",
      ours: schedule.lag.p99,
      ceiling: interval,
      targets: [{ against: "ceiling", op: "<=", bound: 0.05 }],
    },
    {
      scenario: "4 Probing",
      case: scheduled,
      metric: "probes/s",
      unit: "1/s",
      ours: schedule.probesPerSec,
      ceiling: { name: "scheduled", value: p.instances / (p.intervalMs / 1000) },
    },
    { scenario: "4 Probing", case: scheduled, metric: "server CPU/probe", unit: "µs", ours: schedule.cpuPerProbeUs },
    { scenario: "4 Probing", case: flatOut, metric: "probes/s", unit: "1/s", ours: capacity.probesPerSec, ceiling: nodeLoop(bare.getsPerSec) },
    { scenario: "4 Probing", case: flatOut, metric: "probes/s", unit: "1/s", ours: capacity.probesPerSec, ceiling: undiciLoop(bareUndici.getsPerSec) },
    {
      scenario: "4 Probing",
      case: flatOut,
      metric: "prober CPU/probe",
      unit: "µs",
      ours: capacity.cpuPerProbeUs,
      ceiling: nodeLoop(bare.cpuPerGetUs),
      targets: [{ against: "ceiling", op: "<=", bound: 1 }],
    },
    { scenario: "4 Probing", case: flatOut, metric: "prober CPU/probe", unit: "µs", ours: capacity.cpuPerProbeUs, ceiling: undiciLoop(bareUndici.cpuPerGetUs) },
    {
      scenario: "4 Probing",
      case: `queue alone, ${p.queueTasks} queued, c=${p.capacityConcurrency}`,
      metric: "p-queue CPU/probe",
      unit: "µs",
      ours: queue.pQueueUs,
      ceiling: { name: "bare FIFO", value: queue.fifoUs },
    },
    // The ratio is p-queue's share of a whole probe's CPU.
    {
      scenario: "4 Probing",
      case: flatOut,
      metric: "p-queue over bare FIFO/probe",
      unit: "µs",
      ours: queue.pQueueUs - queue.fifoUs,
      ceiling: { name: "prober CPU/probe", value: capacity.cpuPerProbeUs },
    },
  );
  ctx.details.probing = { schedule, capacity, bare, bareUndici, queue, farmCounters };
}
