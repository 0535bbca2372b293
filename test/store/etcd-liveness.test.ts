import { afterEach, describe, expect, it } from "vitest";
import { EtcdLiveness } from "../../src/store/etcd/etcd-liveness.js";

/** A check whose answers the test controls: `healthy` answers at once, otherwise it hangs until its deadline. */
function controllableCheck() {
  const state = { healthy: true, calls: 0 };
  const check = (deadline: number): Promise<void> => {
    state.calls++;
    if (state.healthy) return Promise.resolve();
    return new Promise((_, reject) => setTimeout(() => reject(new Error("deadline exceeded")), Math.max(0, deadline - Date.now())));
  };
  return { state, check };
}

function events() {
  const seen: { kind: "lost" | "regained"; at: number; reason?: string }[] = [];
  let wake: (() => void) | undefined;
  const next = (timeoutMs: number) =>
    new Promise<(typeof seen)[number]>((resolve, reject) => {
      const start = seen.length;
      const timer = setTimeout(() => reject(new Error(`no liveness event within ${timeoutMs} ms`)), timeoutMs);
      wake = () => {
        if (seen.length > start) {
          clearTimeout(timer);
          resolve(seen[start]!);
        }
      };
      wake();
    });
  const push = (e: (typeof seen)[number]) => {
    seen.push(e);
    wake?.();
  };
  return { seen, next, push };
}

describe("EtcdLiveness", () => {
  let liveness: EtcdLiveness | undefined;
  afterEach(async () => {
    await liveness?.stop();
  });

  it("reports loss staleAfterMs after the last success, once, and regains at the next success", async () => {
    const { state, check } = controllableCheck();
    const ev = events();
    liveness = new EtcdLiveness({
      check,
      intervalMs: 20,
      deadlineMs: 100,
      staleAfterMs: 200,
      onLost: (reason) => ev.push({ kind: "lost", at: Date.now(), reason }),
      onRegained: () => ev.push({ kind: "regained", at: Date.now() }),
    });
    liveness.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(ev.seen).toEqual([]); // healthy checks keep it quiet
    state.healthy = false;
    const cutAt = Date.now();
    const lost = await ev.next(1000);
    expect(lost.kind).toBe("lost");
    expect(lost.at - cutAt).toBeGreaterThanOrEqual(100); // the last success was at most one interval before the cut
    expect(lost.at - cutAt).toBeLessThan(1000);
    expect(lost.reason).toMatch(/deadline exceeded/);
    expect(liveness.isLost).toBe(true);

    const callsBefore = state.calls;
    await new Promise((r) => setTimeout(r, 300));
    expect(state.calls).toBeGreaterThan(callsBefore); // it keeps checking while lost
    expect(ev.seen).toHaveLength(1); // and says so once

    state.healthy = true;
    expect((await ev.next(1000)).kind).toBe("regained");
    expect(liveness.isLost).toBe(false);
  });

  it("runs one check at a time and stops with none in flight", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    liveness = new EtcdLiveness({
      check: () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        return new Promise((resolve) => setTimeout(() => resolve(inFlight--), 30));
      },
      intervalMs: 1,
      deadlineMs: 100,
      staleAfterMs: 1000,
      onLost: () => undefined,
      onRegained: () => undefined,
    });
    liveness.start();
    await new Promise((r) => setTimeout(r, 150));
    await liveness.stop();
    expect(maxInFlight).toBe(1);
    expect(inFlight).toBe(0);
  });
});
