import { cpuMark, cpuSince } from "../lib/proc-stat.js";
import { distribution, sleep, type Distribution } from "../lib/stats.js";

/** A closed-loop load: `concurrency` callers, each starting its next call when the last one ends. */
export interface LoopOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The server whose CPU time is read from /proc at the window's start and end. */
  readonly serverPid: number;
  /**
   * When set, the warm-up lasts until this CLOCK_MONOTONIC time
   * (`process.hrtime.bigint()`, in ns, as a string), which every process on
   * the machine shares: loads in several processes then measure one window.
   */
  readonly startAtNs?: string;
  /** Return every latency too (`latencySamplesMs`), so loops of several processes can be merged. */
  readonly keepLatencies?: boolean;
}

export interface LoopResult {
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly wallSeconds: number;
  readonly opsPerSec: number;
  readonly serverCpuSeconds: number;
  /** Server CPU (user + system, all threads) per completed operation, in microseconds. */
  readonly serverCpuPerOpUs: number;
  /** The part of it spent outside the server's main thread: in a Node server, mostly V8's GC and compiler threads. */
  readonly serverHelperThreadsCpuPerOpUs: number;
  /** This load process's own CPU per operation: what bounds throughput on a small machine. */
  readonly clientCpuPerOpUs: number;
  readonly latencyMs: Distribution;
  readonly latencySamplesMs?: number[];
  /** When the measured window started, on CLOCK_MONOTONIC (ns, as a string): loops merged must agree on it. */
  readonly windowStartNs: string;
}

/**
 * Runs `op` in a closed loop: a warm-up (JIT, connection set-up, caches),
 * then a measured window. Operations completing inside the window count.
 */
export async function closedLoop(op: () => Promise<unknown>, o: LoopOptions): Promise<LoopResult> {
  const warmup = warmupMs(o);
  let phase: "warmup" | "measure" | "done" = "warmup";
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  const caller = async (): Promise<void> => {
    while (phase !== "done") {
      const t0 = performance.now();
      try {
        await op();
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        if (errors > 100) throw new Error(`too many errors; first: ${firstError}`);
        continue;
      }
      if (phase === "measure") {
        ops++;
        latencies.push(performance.now() - t0);
      }
    }
  };
  const callers = Array.from({ length: o.concurrency }, caller);
  const failed = Promise.all(callers).then(() => undefined);
  await Promise.race([sleep(warmup), failed]);
  const windowStartNs = process.hrtime.bigint().toString();
  const server = cpuMark(o.serverPid);
  const client = process.cpuUsage();
  phase = "measure";
  await Promise.race([sleep(o.durationMs), failed]);
  phase = "done";
  const { cpuSeconds, mainThreadCpuSeconds, wallSeconds } = cpuSince(server);
  const clientCpu = process.cpuUsage(client);
  await failed;
  if (errors > 0 && ops === 0) throw new Error(`every call failed: ${firstError}`);
  return {
    ops,
    errors,
    ...(firstError ? { firstError } : {}),
    wallSeconds,
    opsPerSec: ops / wallSeconds,
    serverCpuSeconds: cpuSeconds,
    serverCpuPerOpUs: (cpuSeconds * 1e6) / ops,
    serverHelperThreadsCpuPerOpUs: ((cpuSeconds - mainThreadCpuSeconds) * 1e6) / ops,
    clientCpuPerOpUs: (clientCpu.user + clientCpu.system) / ops,
    latencyMs: distribution(latencies),
    ...(o.keepLatencies ? { latencySamplesMs: latencies } : {}),
    windowStartNs,
  };
}

/** The warm-up: `warmupMs`, or until `startAtNs`, which must still be ahead (a late process would measure another window). */
function warmupMs(o: LoopOptions): number {
  if (o.startAtNs === undefined) return o.warmupMs;
  const left = Number(BigInt(o.startAtNs) - process.hrtime.bigint()) / 1e6;
  if (left < 0) throw new Error(`the shared window started ${(-left).toFixed(1)} ms before this load got its orders`);
  return left;
}

/**
 * Loops merged must have measured one window: starts further apart than this
 * share of the window are an error. Timers slip by ~10 ms on a loaded
 * 2-core machine, so a few percent is normal; the merge uses each loop's
 * own rate, which a small slip does not bias.
 */
const MAX_WINDOW_SKEW = 0.1;

/**
 * One load out of closed loops that several processes ran over the same
 * window (`startAtNs`) against one server, each reading the server's CPU at
 * its window's edges. Rates add up (each loop's operations over its own
 * window, so a slip between the windows' edges biases nothing); the server's
 * CPU is the first loop's reading, over the operations all the loops made
 * in that window at their rates; client CPU adds up. Every loop must have
 * kept its latencies.
 */
export function mergeLoops(loops: readonly LoopResult[]): LoopResult {
  const first = loops[0];
  if (!first) throw new Error("no loops to merge");
  const starts = loops.map((l) => Number(BigInt(l.windowStartNs) - BigInt(first.windowStartNs)) / 1e6);
  const skewMs = Math.max(...starts) - Math.min(...starts);
  const windowMs = Math.min(...loops.map((l) => l.wallSeconds)) * 1000;
  if (skewMs > MAX_WINDOW_SKEW * windowMs) {
    throw new Error(`the loops' ${windowMs.toFixed(0)} ms windows started ${skewMs.toFixed(1)} ms apart; they measured different windows`);
  }
  if (first.ops === 0) throw new Error("the first loop completed no calls");
  const sumOf = (f: (l: LoopResult) => number): number => loops.reduce((n, l) => n + f(l), 0);
  const ops = sumOf((l) => l.ops);
  const opsPerSec = sumOf((l) => l.ops / l.wallSeconds);
  const opsInFirstWindow = opsPerSec * first.wallSeconds;
  const samples = loops.flatMap((l) => {
    if (!l.latencySamplesMs) throw new Error("mergeLoops needs loops run with keepLatencies");
    return l.latencySamplesMs;
  });
  const firstError = loops.find((l) => l.firstError)?.firstError;
  return {
    ops,
    errors: sumOf((l) => l.errors),
    ...(firstError ? { firstError } : {}),
    wallSeconds: first.wallSeconds,
    opsPerSec,
    serverCpuSeconds: first.serverCpuSeconds,
    serverCpuPerOpUs: (first.serverCpuSeconds * 1e6) / opsInFirstWindow,
    serverHelperThreadsCpuPerOpUs: (first.serverHelperThreadsCpuPerOpUs * first.ops) / opsInFirstWindow,
    clientCpuPerOpUs: sumOf((l) => l.clientCpuPerOpUs * l.ops) / ops,
    latencyMs: distribution(samples),
    latencySamplesMs: samples, // so that windows of merged loops can be pooled in turn
    windowStartNs: first.windowStartNs,
  };
}
