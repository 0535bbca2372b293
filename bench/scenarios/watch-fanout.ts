import { BenchChild } from "../lib/ipc.js";
import type { BenchContext } from "../lib/context.js";
import { cpuMark, cpuSince } from "../lib/proc-stat.js";
import type { Target } from "../lib/report.js";
import { distribution, sleep, type Distribution } from "../lib/stats.js";

type System = "ceiling" | "registry" | "etcd";
interface Delivery {
  readonly first: bigint;
  readonly all: bigint;
}

/** Collects each event's delivery reports from every watch process. */
class DeliveryTracker {
  private readonly reports = new Map<number, Delivery[]>();
  private readonly waiters = new Map<number, { need: number; resolve: (d: Delivery) => void }>();

  constructor(workers: readonly BenchChild[]) {
    for (const w of workers) {
      w.on("delivered", (data) => {
        const d = data as { seq: number; first: string; all: string };
        const list = this.reports.get(d.seq) ?? [];
        list.push({ first: BigInt(d.first), all: BigInt(d.all) });
        this.reports.set(d.seq, list);
        this.check(d.seq);
      });
    }
  }

  /** Resolves when `processes` reports for `seq` are in: first arrival anywhere, last arrival everywhere. */
  expect(seq: number, processes: number, timeoutMs: number): Promise<Delivery> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(seq);
        reject(new Error(`event ${seq} did not reach every stream within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(seq, {
        need: processes,
        resolve: (d) => {
          clearTimeout(timer);
          resolve(d);
        },
      });
      this.check(seq);
    });
  }

  private check(seq: number): void {
    const waiter = this.waiters.get(seq);
    const list = this.reports.get(seq);
    if (!waiter || !list || list.length < waiter.need) return;
    this.waiters.delete(seq);
    this.reports.delete(seq);
    let first = list[0]!.first;
    let all = list[0]!.all;
    for (const d of list) {
      if (d.first < first) first = d.first;
      if (d.all > all) all = d.all;
    }
    waiter.resolve({ first, all });
  }
}

interface RunResult {
  readonly toAllMs: Distribution;
  readonly toFirstMs: Distribution;
  readonly serverCpuPerEventUs: number;
  readonly openMs: number;
}

let seq = 0;

/**
 * Scenario 3: 1,000 open watch streams, from 1 and from 4 client processes.
 * Each round registers one instance (or puts one etcd key) and measures from
 * the write's acknowledgement, as its caller saw it, until the event reached
 * every stream (CLOCK_MONOTONIC, shared by all processes). Rounds are spaced
 * by 5-15 ms so each event is measured on its own.
 */
export async function watchFanoutScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.fanout;
  // One watch process holds every stream on one connection: more than serve's default per-connection cap.
  const reg = await ctx.startRegistry("s3-fanout", { store: "memory", healthChecks: false, maxWatchStreamsPerConnection: p.streams });
  const workers = Array.from({ length: Math.max(...p.processes) }, (_, i) => BenchChild.start(`watch-${i}`, "load/watch-worker.ts"));
  await Promise.all(workers.map((w) => w.ready));
  const tracker = new DeliveryTracker(workers);
  const targets: Record<System, { target: string; pid: number }> = {
    ceiling: { target: ctx.ceilingAddress, pid: ctx.ceiling.pid },
    registry: { target: reg.address, pid: reg.child.pid },
    etcd: { target: ctx.etcd.endpoint, pid: ctx.etcd.pid },
  };
  const raw: Record<string, RunResult> = {};

  for (const processes of p.processes) {
    const active = workers.slice(0, processes);
    const results = {} as Record<System, RunResult>;
    for (const system of ["ceiling", "registry", "etcd"] as const) {
      ctx.log(`scenario 3: ${p.streams} ${system} watch streams from ${processes} process(es), ${p.rounds} events`);
      const { target, pid } = targets[system];
      const channel = system === "etcd" ? `/fanout/${processes}p/` : `fanout-${processes}p`;
      const opened = await Promise.all(
        active.map((w) => w.request<{ openMs: number }>("open", { system, target, streams: p.streams / processes, channel })),
      );
      const toAll: number[] = [];
      const toFirst: number[] = [];
      const cpu = cpuMark(pid);
      for (let round = 0; round < p.rounds; round++) {
        const n = ++seq;
        const delivered = tracker.expect(n, processes, 15_000);
        const ack = BigInt(await ctx.load.request<string>("fanoutTrigger", { system, target, channel, seq: n }));
        const d = await delivered;
        toAll.push(Number(d.all - ack) / 1e6);
        toFirst.push(Number(d.first - ack) / 1e6);
        await sleep(5 + Math.random() * 10);
      }
      const used = cpuSince(cpu);
      const closed = await Promise.all(active.map((w) => w.request<{ failure: string | null }>("close")));
      const failure = closed.find((c) => c.failure)?.failure;
      if (failure) throw new Error(`scenario 3 (${system}): a watch stream failed: ${failure}`);
      results[system] = {
        toAllMs: distribution(toAll),
        toFirstMs: distribution(toFirst),
        serverCpuPerEventUs: (used.cpuSeconds * 1e6) / p.rounds,
        openMs: Math.max(...opened.map((o) => o.openMs)),
      };
      raw[`${processes}p ${system}`] = results[system];
      await sleep(200); // let cancelled streams wind down before the next system
    }
    const caseName = `${p.streams} streams, ${processes} proc`;
    const { ceiling, registry, etcd } = results;
    const row = (metric: string, unit: string, pick: (r: RunResult) => number, targets: Target[] = []) => ({
      scenario: "3 Watch fan-out",
      case: caseName,
      metric,
      unit,
      ours: pick(registry),
      ceiling: { name: "bare push", value: pick(ceiling) },
      peer: { name: "etcd", value: pick(etcd) },
      ...(targets.length > 0 ? { targets } : {}),
    });
    ctx.add(
      row("ack→all p50", "ms", (r) => r.toAllMs.p50),
      row("ack→all p99", "ms", (r) => r.toAllMs.p99, [
        { against: "ceiling", op: "<=", bound: 1.25 },
        { against: "peer", op: "<=", bound: 0.5 },
      ]),
      row("ack→all max", "ms", (r) => r.toAllMs.max),
      // What grows with every router (and xDS client) watching: the cost of one event to one watcher.
      row("server CPU/watcher·event", "µs", (r) => r.serverCpuPerEventUs / p.streams, [{ against: "ceiling", op: "<=", bound: 1.2 }]),
    );
  }
  ctx.details.fanout = raw;
  await Promise.all(workers.map((w) => w.stop()));
  await reg.child.stop();
}
