import { afterEach, describe, expect, it } from "vitest";
import { EtcdLiveness } from "../../src/store/etcd/etcd-liveness.js";

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

/** The stale window over the members' checks; the checks themselves are EtcdMembers' (test/in-process/etcd-members.test.ts). */
describe("EtcdLiveness", () => {
  let liveness: EtcdLiveness | undefined;
  let answering: NodeJS.Timeout | undefined;
  afterEach(() => {
    clearInterval(answering);
    liveness?.stop();
  });

  it("reports loss staleAfterMs after the last answer, once, naming the last failure, and regains at the next answer", async () => {
    const ev = events();
    liveness = new EtcdLiveness({
      staleAfterMs: 200,
      onLost: (reason) => ev.push({ kind: "lost", at: Date.now(), reason }),
      onRegained: () => ev.push({ kind: "regained", at: Date.now() }),
    });
    liveness.start();
    answering = setInterval(() => liveness!.answered(), 20);
    await new Promise((r) => setTimeout(r, 400));
    expect(ev.seen).toEqual([]); // answers keep it quiet past the window

    clearInterval(answering);
    const lastAnswer = Date.now();
    liveness.failed("http://b: deadline exceeded");
    const lost = await ev.next(1000);
    expect(lost.kind).toBe("lost");
    expect(lost.at - lastAnswer).toBeGreaterThanOrEqual(180);
    expect(lost.reason).toMatch(/for 200 ms \(last error: http:\/\/b: deadline exceeded\)/);
    expect(liveness.isLost).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(ev.seen).toHaveLength(1); // said once

    liveness.answered();
    expect(ev.seen.map((e) => e.kind)).toEqual(["lost", "regained"]); // at once, not at the next window
    expect(liveness.isLost).toBe(false);
  });

  it("says nothing after stop", async () => {
    const ev = events();
    liveness = new EtcdLiveness({ staleAfterMs: 50, onLost: () => ev.push({ kind: "lost", at: Date.now() }), onRegained: () => undefined });
    liveness.start();
    liveness.stop();
    await new Promise((r) => setTimeout(r, 150));
    expect(ev.seen).toEqual([]);
  });
});
