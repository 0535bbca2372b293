import { once } from "node:events";
import { connect, createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ReportedLiveness } from "../../src/registry/reported-liveness.js";
import type { HealthCheckSpec } from "../../src/registry/types.js";

/**
 * The clocks of TTL instances when the registry's event loop stalls: the
 * stalls here are real (the test blocks the loop), so the timers fire late
 * exactly as after a SIGSTOP, and the heartbeats a stall held up are
 * delivered right after it, as the thawed loop reads them.
 */
const TTL_MS = 50;
const ttl: HealthCheckSpec = { kind: "ttl", grpcService: "", tls: false, ttlMs: TTL_MS, timeoutMs: 0 };

/** Blocks the event loop for `ms`: no timer or I/O runs meanwhile. */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

let liveness: ReportedLiveness | undefined;
afterEach(() => liveness?.clear());

/** A ReportedLiveness whose failures resolve `failed` (with the time of the first). */
function tracking() {
  let resolve: (at: number) => void = () => {};
  const failed = new Promise<number>((r) => (resolve = r));
  const failures: string[] = [];
  liveness = new ReportedLiveness(60_000, (id, reason) => {
    failures.push(`${id}: ${reason}`);
    resolve(performance.now());
  });
  return { liveness, failed, failures };
}

describe("ReportedLiveness across a stalled event loop", () => {
  it("gives a ttl that ran out during a stall as long again: the heartbeat the stall held up keeps the instance", async () => {
    const { liveness, failed, failures } = tracking();
    liveness.track("i", ttl);
    stall(4 * TTL_MS);
    // The held-up heartbeat is read once the late timers have run: a timer
    // due after theirs runs after them, as a thawed loop's timers run
    // before it reads its sockets.
    const { heartbeatAt, failedBefore } = await new Promise<{ heartbeatAt: number; failedBefore: string[] }>((resolve) =>
      setTimeout(() => {
        const failedBefore = [...failures];
        liveness.heartbeat("i");
        resolve({ heartbeatAt: performance.now(), failedBefore });
      }, 0),
    );
    expect(failedBefore).toEqual([]);
    // Silent from then on: it fails a ttl after that heartbeat.
    expect((await failed) - heartbeatAt).toBeGreaterThanOrEqual(TTL_MS - 5);
    expect(failures).toEqual(["i: ttl expired"]);
  });

  it("reads the reports a stall held up before failing, also when the ttl ran out just before the stall ended", async () => {
    const { liveness, failed, failures } = tracking();
    // Heartbeats arrive over a real loopback connection, as a thawed loop reads them: in its poll phase, after its timers.
    const server = createServer((socket) => socket.on("data", () => liveness.heartbeat("i")));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
    await once(client, "connect");
    try {
      liveness.track("i", ttl);
      stall(TTL_MS - 10);
      client.write("beat"); // sent during the stall: waits unread in the kernel
      stall(40); // the ttl runs out 30 ms before the stall ends: too little to count as late
      const heartbeatAt = await new Promise<number>((resolve) => server.once("connection", () => {}) && setImmediate(() => setImmediate(() => setImmediate(() => resolve(performance.now())))));
      expect(failures).toEqual([]);
      // Silent from then on: it fails about a ttl after the heartbeat the stall held up.
      expect((await failed) - heartbeatAt).toBeGreaterThan(TTL_MS / 2);
    } finally {
      client.destroy();
      server.close();
    }
  });

  it("extends only once: a loop that stays behind does not keep a silent instance from failing", async () => {
    const { liveness, failed } = tracking();
    const trackedAt = performance.now();
    liveness.track("i", ttl);
    stall(4 * TTL_MS); // the ttl runs out 3 ttls late: extended by that
    // A second, longer stall from just after the first late timer: the extension runs out late too.
    const stalled = new Promise<void>((resolve) =>
      setTimeout(() => {
        stall(40 * TTL_MS);
        resolve();
      }, 0),
    );
    const [at] = await Promise.all([failed, stalled]);
    // At the end of the second stall, not one more stall's length after it.
    expect(at - trackedAt).toBeLessThan(44 * TTL_MS + 30 * TTL_MS);
    expect(at - trackedAt).toBeGreaterThanOrEqual(44 * TTL_MS - 5);
  });

  it("fails on time a silent instance whose ttl ran out with the loop running", async () => {
    const { liveness, failed } = tracking();
    const trackedAt = performance.now();
    liveness.track("i", ttl);
    const elapsed = (await failed) - trackedAt;
    expect(elapsed).toBeGreaterThanOrEqual(TTL_MS - 5);
    expect(elapsed).toBeLessThan(TTL_MS + 1000);
  });
});
