import { describe, expect, it } from "vitest";
import { mergeLoops, type LoopResult } from "../../bench/load/closed-loop.js";
import { distribution } from "../../bench/lib/stats.js";

function loop(ops: number, samples: number[], o: Partial<LoopResult> = {}): LoopResult {
  return {
    ops,
    errors: 0,
    wallSeconds: 2,
    opsPerSec: ops / 2,
    serverCpuSeconds: 0.5,
    serverCpuPerOpUs: 0.5e6 / ops,
    serverHelperThreadsCpuPerOpUs: 0.1e6 / ops,
    clientCpuPerOpUs: 100,
    latencyMs: distribution(samples),
    latencySamplesMs: samples,
    windowStartNs: "5000000000",
    ...o,
  };
}

describe("mergeLoops", () => {
  it("adds up operations and client CPU over one window, and takes the server's CPU once", () => {
    const late = { clientCpuPerOpUs: 200, errors: 2, firstError: "boom", windowStartNs: "5004000000" }; // 4 ms later: one window
    const merged = mergeLoops([loop(1000, [1, 2, 3]), loop(3000, [4, 5, 6, 7], late)]);
    expect(merged.ops).toBe(4000);
    expect(merged.opsPerSec).toBe(2000);
    expect(merged.serverCpuPerOpUs).toBe(125); // 0.5 s of server CPU over 4,000 calls, not 1 s
    expect(merged.serverHelperThreadsCpuPerOpUs).toBe(25);
    expect(merged.clientCpuPerOpUs).toBe(175); // (1000 * 100 + 3000 * 200) / 4000
    expect(merged.errors).toBe(2);
    expect(merged.firstError).toBe("boom");
    expect(merged.latencyMs).toEqual(distribution([1, 2, 3, 4, 5, 6, 7]));
  });

  it("adds each loop's own rate, so windows whose edges slipped apart are not biased", () => {
    // The second loop's timer fired 10 ms late and its window ran 1.99 s: 995 calls at the same 500/s.
    const merged = mergeLoops([loop(1000, [1]), loop(995, [1], { wallSeconds: 1.99, windowStartNs: "5010000000" })]);
    expect(merged.opsPerSec).toBe(1000);
    expect(merged.serverCpuPerOpUs).toBe(250); // 0.5 s over the 2,000 calls of the first loop's 2 s window
  });

  it("refuses loops whose windows started further apart than a tenth of the window", () => {
    expect(() => mergeLoops([loop(10, [1]), loop(10, [1], { windowStartNs: "5250000000" })])).toThrow(
      /2000 ms windows started 250\.0 ms apart/,
    );
  });

  it("refuses loops that did not keep their latencies", () => {
    const { latencySamplesMs: _, ...withoutSamples } = loop(10, [1]);
    expect(() => mergeLoops([withoutSamples])).toThrow(/keepLatencies/);
  });
});
