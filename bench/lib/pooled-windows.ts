import type { LoopResult } from "../load/closed-loop.js";
import { distribution, type Distribution } from "./stats.js";

/** Every window of one server, pooled: sums of ops, wall time and server CPU. */
export interface Pooled {
  readonly opsPerSec: number;
  readonly serverCpuPerOpUs: number;
  /** Of `serverCpuPerOpUs`, what the server's threads other than its main thread used (V8's GC and compiler). */
  readonly serverHelperThreadsCpuPerOpUs: number;
  readonly clientCpuPerOpUs: number;
  /** Over every window's calls, when every window kept its latencies. */
  readonly latencyMs?: Distribution;
  readonly windows: readonly LoopResult[];
}

/**
 * Pools one server's windows, measured at different times (interleaved with
 * other servers' windows): on a shared VM the machine's speed drifts by
 * ±25% between adjacent windows, so a figure from one window per server can
 * read either way; interleaving puts every server through the same drift and
 * pooling averages it out.
 */
function poolWindows(windows: readonly LoopResult[]): Pooled {
  let ops = 0;
  let wall = 0;
  let serverCpu = 0;
  let helperCpuUs = 0;
  let clientCpuUs = 0;
  for (const w of windows) {
    // A merged window's own rate over its own (the first loop's) wall time,
    // as mergeLoops normalises it, not every loop's raw count.
    ops += w.opsPerSec * w.wallSeconds;
    wall += w.wallSeconds;
    serverCpu += w.serverCpuSeconds;
    helperCpuUs += w.serverHelperThreadsCpuPerOpUs * w.ops;
    clientCpuUs += w.clientCpuPerOpUs * w.ops;
  }
  const samples = windows.every((w) => w.latencySamplesMs) ? windows.flatMap((w) => w.latencySamplesMs as number[]) : undefined;
  return {
    opsPerSec: ops / wall,
    serverCpuPerOpUs: (serverCpu * 1e6) / ops,
    serverHelperThreadsCpuPerOpUs: helperCpuUs / ops,
    clientCpuPerOpUs: clientCpuUs / ops,
    ...(samples ? { latencyMs: distribution(samples) } : {}),
    windows,
  };
}

/**
 * Measures every subject in `rounds` rounds of one window each, every round
 * in a rotated order, and pools each subject's windows (by name). One window
 * per subject made a target at its edge read either way (Register c=64 met
 * in one run, missed in the next); interleaving puts every subject through
 * the same drift, and pooling averages it out.
 */
export async function measureInterleaved<S extends { readonly name: string }>(
  subjects: readonly S[],
  rounds: number,
  measure: (subject: S) => Promise<LoopResult>,
): Promise<Map<string, Pooled>> {
  const windows = new Map<string, LoopResult[]>(subjects.map((s) => [s.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < subjects.length; k++) {
      const s = subjects[(k + round) % subjects.length] as S;
      windows.get(s.name)?.push(await measure(s));
    }
  }
  return new Map([...windows].map(([name, w]) => [name, poolWindows(w)]));
}

/** A pooled result for the report's JSON: every window's figures, no latency samples. */
export function pooledDetail(r: Pooled): Record<string, unknown> {
  return {
    opsPerSec: r.opsPerSec,
    serverCpuPerOpUs: r.serverCpuPerOpUs,
    serverHelperThreadsCpuPerOpUs: r.serverHelperThreadsCpuPerOpUs,
    clientCpuPerOpUs: r.clientCpuPerOpUs,
    ...(r.latencyMs ? { latencyMs: r.latencyMs } : {}),
    windows: r.windows.map((w) => ({
      ops: w.ops,
      seconds: w.wallSeconds,
      errors: w.errors,
      serverCpuPerOpUs: w.serverCpuPerOpUs,
      serverHelperThreadsCpuPerOpUs: w.serverHelperThreadsCpuPerOpUs,
      latencyMs: w.latencyMs,
    })),
  };
}
