import type { GetLoopClient, GetLoopResult } from "../load/http-get-loop.js";
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

function share(total: number, parts: number, i: number): number {
  return Math.floor(total / parts) + (i < total % parts ? 1 : 0);
}

function blocksFor(ports: readonly number[], instances: number): SeedBlock[] {
  return ports.map((port, i) => ({ serviceType: "probed", host: "127.0.0.1", port, count: share(instances, ports.length, i) }));
}

/**
 * The schedule run: every instance probed once per interval, 10% of them
 * blackholed. Lag is the registry's own figure (probe start minus due time,
 * over its last 1,024 probes), sampled every 100 ms; p99 is the worst
 * window's p99, p50 the median window's.
 */
async function scheduleRun(ctx: BenchContext, p: Probing, healthyPorts: number[], blackholePorts: number[]) {
  const blackholed = Math.round(p.instances / 10);
  const reg = await ctx.startRegistry("s4-schedule", {
    store: "memory",
    healthChecks: true,
    healthCheckInterval: p.intervalMs,
    healthCheckTTL: p.ttlMs,
    healthCheckMaxRequests: p.maxRequests,
  });
  ctx.log(`scenario 4: probing ${p.instances} instances (${blackholed} blackholed) every ${p.intervalMs} ms, max ${p.maxRequests} in flight`);
  await reg.child.request("seed", [...blocksFor(healthyPorts, p.instances - blackholed), ...blocksFor(blackholePorts, blackholed)], 120_000);
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
async function capacityRun(ctx: BenchContext, p: Probing, healthyPorts: number[]) {
  const healthy = p.instances - Math.round(p.instances / 10);
  const reg = await ctx.startRegistry("s4-capacity", {
    store: "memory",
    healthChecks: true,
    healthCheckInterval: p.capacityIntervalMs,
    healthCheckTTL: p.ttlMs,
    healthCheckMaxRequests: p.capacityConcurrency,
  });
  ctx.log(`scenario 4: prober capacity, ${healthy} healthy instances every ${p.capacityIntervalMs} ms, ${p.capacityConcurrency} in flight`);
  await reg.child.request("seed", blocksFor(healthyPorts, healthy), 120_000);
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
 * Scenario 4: the registry probes 10,000 instances served by HTTP servers on
 * 127.0.0.1 (many ports, ~100 instances per port), 10% of them on blackhole
 * ports that accept and never answer. healthCheckMaxRequests is raised for
 * the schedule run so the blackholed probes (each holding a slot until the
 * timeout) leave room for the rest. Ceiling: a bare keep-alive GET loop over
 * the healthy ports at the capacity run's concurrency, on node:http (the
 * issue's ceiling, the target's) and on undici (the prober's own client).
 * The probe queue (p-queue, the user's choice) is also measured alone in the
 * load process against a bare FIFO, and what it adds is set beside a whole
 * probe's CPU from the capacity run.
 */
export async function probingScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.probing;
  const farm = BenchChild.start<{ healthyPorts: number[]; blackholePorts: number[] }>(
    "health-farm",
    "servers/health-farm.ts",
    [JSON.stringify({ healthy: p.healthyPorts, blackhole: p.blackholePorts })],
  );
  const { healthyPorts, blackholePorts } = await farm.ready;
  const schedule = await scheduleRun(ctx, p, healthyPorts, blackholePorts);
  const capacity = await capacityRun(ctx, p, healthyPorts);
  const bareLoop = async (client: GetLoopClient): Promise<GetLoopResult> => {
    ctx.log(`scenario 4: bare GET loop on ${client}, concurrency ${p.capacityConcurrency}`);
    return ctx.load.request<GetLoopResult>("httpGetLoop", {
      ports: healthyPorts,
      concurrency: p.capacityConcurrency,
      warmupMs: Math.min(1000, p.capacityMs / 2),
      durationMs: p.capacityMs,
      client,
    });
  };
  const bare = await bareLoop("node:http");
  const bareUndici = await bareLoop("undici");
  const farmCounters = await farm.request("counters");
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
