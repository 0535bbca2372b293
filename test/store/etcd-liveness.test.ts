import { once } from "node:events";
import { connect, createServer, type AddressInfo } from "node:net";
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

/** Blocks the event loop for `ms`, as a SIGSTOP would: no timer or I/O runs meanwhile. */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
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

  it("extends a window that ran out during a stall by how late it ran, once: a loop that stays behind still reports loss", async () => {
    const ev = events();
    liveness = new EtcdLiveness({ staleAfterMs: 200, onLost: () => ev.push({ kind: "lost", at: performance.now() }), onRegained: () => undefined });
    liveness.start();
    stall(500); // the window runs out 300 ms into the stall
    const thawedAt = performance.now();
    const lost = await ev.next(2000);
    expect(lost.at - thawedAt).toBeGreaterThanOrEqual(280); // as late again after the thaw, not at once

    liveness.stop();
    const again = events();
    liveness = new EtcdLiveness({ staleAfterMs: 200, onLost: () => again.push({ kind: "lost", at: performance.now() }), onRegained: () => undefined });
    liveness.start();
    stall(500);
    // Stalled again just after the window started over: it runs out late too, and that is a loss.
    const secondStall = new Promise<number>((resolve) => setTimeout(() => (stall(500), resolve(performance.now())), 20));
    const [second, secondThaw] = await Promise.all([again.next(3000), secondStall]);
    expect(second.at - secondThaw).toBeLessThan(100);
  });

  it("reads an answer a stall held up before judging the window", async () => {
    const ev = events();
    liveness = new EtcdLiveness({ staleAfterMs: 200, onLost: () => ev.push({ kind: "lost", at: performance.now() }), onRegained: () => undefined });
    // Answers come over a real loopback connection, read (as after a thaw) in the poll phase, after the timers.
    let answeredAt = 0;
    const server = createServer((socket) =>
      socket.on("data", () => {
        answeredAt = performance.now();
        liveness?.answered();
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
    await once(client, "connect");
    try {
      liveness.start();
      stall(150);
      client.write("answer"); // sent during the stall: waits unread in the kernel
      stall(100); // the window runs out 50 ms before the stall ends
      const lost = await ev.next(2000);
      // Silent after the held-up answer: lost a window after it.
      expect(answeredAt).toBeGreaterThan(0);
      expect(lost.at - answeredAt).toBeGreaterThanOrEqual(180);
    } finally {
      client.destroy();
      server.close();
    }
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
