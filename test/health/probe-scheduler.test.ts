import type http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { HttpProber, type ProbeResult, type ProbeTarget } from "../../src/health/http-probe.js";
import { ProbeScheduler, type ProbeSchedulerOptions } from "../../src/health/probe-scheduler.js";
import { startBlackhole } from "../support/blackhole.js";
import { Waiter } from "../support/waiter.js";
import { nextEvent, sleep, startHttp } from "./helpers.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const target = (id: string, port: number): ProbeTarget => ({ id, host: "127.0.0.1", port, path: "/health" });

/**
 * A scheduler over a synthetic probe that runs `onProbe`, then passes and
 * notifies the returned waiter. Defaults: 4 in flight, batches of 10, first
 * probe at once; stopped after the test.
 */
function passingScheduler(
  options: Partial<ProbeSchedulerOptions> & Pick<ProbeSchedulerOptions, "intervalMs">,
  onProbe: (t: ProbeTarget, signal: AbortSignal) => unknown,
): { scheduler: ProbeScheduler; waiter: Waiter } {
  const waiter = new Waiter();
  const scheduler = new ProbeScheduler({
    maxConcurrent: 4,
    batchSize: 10,
    firstProbeMaxDelayMs: 0,
    onResult: () => undefined,
    probe: async (t, signal) => {
      await onProbe(t, signal);
      waiter.notify();
      return { ok: true, status: 200 };
    },
    ...options,
  });
  cleanups.push(() => scheduler.stop());
  return { scheduler, waiter };
}

/** A scheduler over a real HttpProber that records every probe start, settle and result. */
function harness(options: Partial<ProbeSchedulerOptions> & { timeoutMs?: number } = {}) {
  const prober = new HttpProber({ timeoutMs: options.timeoutMs ?? 2000 });
  const waiter = new Waiter();
  const results = new Map<string, ProbeResult[]>();
  const started: string[] = [];
  const settled: { id: string; result: ProbeResult }[] = [];
  const count = (id: string): number => results.get(id)?.length ?? 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const scheduler = new ProbeScheduler({
    intervalMs: 100,
    maxConcurrent: 4,
    batchSize: 100,
    firstProbeMaxDelayMs: 20,
    probe: async (t, signal) => {
      started.push(t.id);
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        const result = await prober.probe(t, signal);
        settled.push({ id: t.id, result });
        return result;
      } finally {
        inFlight--;
        waiter.notify();
      }
    },
    onResult: (t, r) => {
      results.set(t.id, [...(results.get(t.id) ?? []), r]);
      waiter.notify();
    },
    ...options,
  });
  cleanups.push(async () => {
    await scheduler.stop();
    prober.close();
  });
  return { scheduler, waiter, results, started, settled, count, inFlight: () => inFlight, maxInFlight: () => maxInFlight };
}

async function healthy() {
  const s = await startHttp((_req, res) => res.end('{"status":"up"}'));
  cleanups.push(() => s.close());
  return s;
}

/**
 * Options that make targets added at time 0 due in the order of `draws`:
 * each is due at its draw (in ms), the clock stands still until `due()`
 * moves it past all of them, and the next tick dispatches every one at once,
 * so all but `maxConcurrent` of them wait in the probe queue together.
 */
function fixedDueOrder(draws: number[]) {
  let clock = 0;
  return {
    options: { firstProbeMaxDelayMs: 1, now: () => clock, random: () => draws.shift() ?? 0.5 },
    due: () => void (clock = 1),
  };
}

async function blackhole() {
  const hole = await startBlackhole();
  cleanups.push(() => hole.close());
  return hole;
}

/**
 * A scheduler over one slot and a synthetic probe: targets named `dead…`
 * fail after `deadMs`, the others pass after `liveMs`; every probe start is
 * recorded (and notifies the waiter).
 */
function oneSlotOverDeadAndLive(options: { deadMs: number; liveMs: number; yieldAfterFailures?: number }) {
  const starts: { id: string; at: number }[] = [];
  const waiter = new Waiter();
  const dead = (id: string): boolean => id.startsWith("dead");
  const scheduler = new ProbeScheduler({
    intervalMs: 50,
    maxConcurrent: 1,
    batchSize: 100,
    firstProbeMaxDelayMs: 0,
    ...(options.yieldAfterFailures === undefined ? {} : { yieldAfterFailures: options.yieldAfterFailures }),
    probe: async (t) => {
      starts.push({ id: t.id, at: performance.now() });
      waiter.notify();
      await sleep(dead(t.id) ? options.deadMs : options.liveMs);
      return dead(t.id) ? { ok: false, reason: "timed out" } : { ok: true, status: 200 };
    },
    onResult: () => undefined,
  });
  cleanups.push(() => scheduler.stop());
  const deadProbes = (): number => starts.filter((s) => dead(s.id)).length;
  return { scheduler, starts, waiter, deadProbes };
}

describe("ProbeScheduler", () => {
  it("probes each target repeatedly at roughly the interval", async () => {
    const a = await healthy();
    const b = await healthy();
    const h = harness({ intervalMs: 100 });
    h.scheduler.add(target("a", a.port));
    h.scheduler.add(target("b", b.port));
    h.scheduler.start();
    await h.waiter.until(() => h.count("a") >= 6 && h.count("b") >= 6, "six probes of each target", 5000);
    for (const s of [a, b]) {
      const gaps = s.requests.slice(1).map((r, i) => r.at - (s.requests[i]?.at ?? 0));
      const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length;
      expect(mean).toBeGreaterThan(70);
      expect(mean).toBeLessThan(200);
    }
    expect(h.results.get("a")?.every((r) => r.ok)).toBe(true);
    expect(h.scheduler.lagStats().count).toBeGreaterThanOrEqual(12);
  });

  it("keeps probing healthy targets on time while a blackholed probe hangs", async () => {
    const servers = [await healthy(), await healthy(), await healthy()];
    const hole = await blackhole();
    const h = harness({ intervalMs: 50, maxConcurrent: 2, timeoutMs: 10_000 });
    servers.forEach((s, i) => h.scheduler.add(target(`ok${i}`, s.port)));
    h.scheduler.add(target("hole", hole.port));
    h.scheduler.start();
    await nextEvent(hole.server, "connection", 5000);
    const before = servers.map((_s, i) => h.count(`ok${i}`));
    // Ten more intervals' worth of probes each, while the blackhole holds a slot.
    await h.waiter.until(
      () => servers.every((_s, i) => h.count(`ok${i}`) >= (before[i] ?? 0) + 10),
      "ten more probes of every healthy target",
      5000,
    );
    expect(h.count("hole")).toBe(0);
    expect(hole.accepted).toBe(1); // skipped while in flight, never overlapped
    const lag = h.scheduler.lagStats();
    // A sweep waiting on the blackhole would be seconds late; generous bounds for busy CI.
    expect(lag.p50).toBeLessThan(50);
    expect(lag.p99).toBeLessThan(200);
  });

  it("remove() aborts the in-flight probe and drops its result", async () => {
    const hole = await blackhole();
    const h = harness({ timeoutMs: 10_000 });
    h.scheduler.add(target("hole", hole.port));
    h.scheduler.start();
    const [socket] = (await nextEvent(hole.server, "connection", 5000)) as [net.Socket];
    const closed = nextEvent(socket, "close", 5000);
    h.scheduler.remove("hole");
    expect(h.scheduler.has("hole")).toBe(false);
    expect(h.scheduler.size).toBe(0);
    await closed;
    await h.waiter.until(() => h.settled.length === 1, "the aborted probe to settle", 5000);
    expect(h.settled[0]?.result).toEqual({ ok: false, reason: "aborted" });
    expect(h.count("hole")).toBe(0);
  });

  it("stop() aborts in-flight probes, waits for them, and reports nothing afterwards", async () => {
    const ok = await healthy();
    const hole = await blackhole();
    const h = harness({ intervalMs: 30, timeoutMs: 10_000 });
    h.scheduler.add(target("ok", ok.port));
    h.scheduler.add(target("hole", hole.port));
    h.scheduler.start();
    await nextEvent(hole.server, "connection", 5000);
    await h.waiter.until(() => h.count("ok") >= 2, "two healthy probes", 5000);
    await h.scheduler.stop();
    expect(h.inFlight()).toBe(0);
    expect(h.settled.find((s) => s.id === "hole")?.result).toEqual({ ok: false, reason: "aborted" });
    const seen = h.count("ok") + h.count("hole");
    const requests = ok.requests.length;
    await sleep(150); // nothing to await: asserting that no probe happens for five intervals
    expect(h.count("ok") + h.count("hole")).toBe(seen);
    expect(ok.requests.length).toBe(requests);
  });

  it("stop() waits for a probe that settles late after its abort", async () => {
    let settled = false;
    const scheduler = new ProbeScheduler({
      intervalMs: 1000,
      maxConcurrent: 1,
      batchSize: 10,
      firstProbeMaxDelayMs: 0,
      probe: (_t, signal) =>
        new Promise((resolve) => {
          signal.addEventListener("abort", () =>
            setTimeout(() => {
              settled = true;
              resolve({ ok: false, reason: "aborted" });
            }, 50),
          );
          started();
        }),
      onResult: () => results++,
    });
    let results = 0;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    scheduler.add(target("slow", 1));
    scheduler.start();
    await running;
    await scheduler.stop();
    expect(settled).toBe(true);
    expect(results).toBe(0);
  });

  it("keeps the schedule when onResult throws, reporting via onError", async () => {
    const ok = await healthy();
    const errors: unknown[] = [];
    let calls = 0;
    const h = harness({
      intervalMs: 30,
      onResult: () => {
        calls++;
        throw new Error(`listener failure ${calls}`);
      },
      onError: (err) => {
        errors.push(err);
        h.waiter.notify();
      },
    });
    h.scheduler.add(target("ok", ok.port));
    h.scheduler.start();
    await h.waiter.until(() => errors.length >= 4, "four reported listener failures", 5000);
    expect(calls).toBe(errors.length);
    expect((errors[0] as Error).message).toBe("listener failure 1");
    expect(ok.requests.length).toBeGreaterThanOrEqual(4);
  });

  it("staggers the first probes of targets added together (injected jitter)", async () => {
    const jitter = [0, 0.25, 0.5, 0.75, 1];
    const starts = new Map<string, number>();
    const { scheduler, waiter } = passingScheduler(
      { intervalMs: 10_000, maxConcurrent: 10, firstProbeMaxDelayMs: 400, random: () => jitter.shift() ?? 0 },
      (t) => starts.set(t.id, performance.now()),
    );
    const added = performance.now();
    for (const id of ["a", "b", "c", "d", "e"]) scheduler.add(target(id, 1));
    scheduler.start();
    await waiter.until(() => starts.size === 5, "first probe of all five targets", 3000);
    const offsets = ["a", "b", "c", "d", "e"].map((id) => (starts.get(id) ?? 0) - added);
    for (let i = 1; i < offsets.length; i++) {
      expect(offsets[i]! - offsets[i - 1]!).toBeGreaterThan(50);
    }
    expect(offsets[4]).toBeLessThan(400 + 200);
  });

  it("gives targets added together independent phases from their second probe on", async () => {
    // firstDue draws once per target (0: all at once), then each second probe draws its phase.
    const draws = [0, 0, 0, 0, 0, 0.9, 0.1, 0.7, 0.3, 0.5];
    const probes = new Map<string, number[]>();
    const { scheduler, waiter } = passingScheduler(
      { intervalMs: 1000, maxConcurrent: 10, random: () => draws.shift() ?? 0 },
      (t) => probes.set(t.id, [...(probes.get(t.id) ?? []), performance.now()]),
    );
    const ids = ["a", "b", "c", "d", "e"];
    const started = performance.now();
    scheduler.start();
    for (const id of ids) scheduler.add(target(id, 1));
    await waiter.until(() => ids.every((id) => (probes.get(id)?.length ?? 0) >= 2), "two probes of every target", 5000);
    const second = ids.map((id) => (probes.get(id)?.[1] ?? 0) - started);
    // The injected phases 0.9, 0.1, 0.7, 0.3, 0.5 of a 1 s interval, in that order.
    const order = [...ids].sort((x, y) => (second[ids.indexOf(x)] ?? 0) - (second[ids.indexOf(y)] ?? 0));
    expect(order).toEqual(["b", "d", "e", "c", "a"]);
    expect(Math.max(...second) - Math.min(...second)).toBeGreaterThan(500);
  });

  it("skips a target whose previous probe is still in flight instead of overlapping", async () => {
    let active = 0;
    let maxActive = 0;
    let calls = 0;
    const { scheduler, waiter } = passingScheduler({ intervalMs: 20 }, async () => {
      calls++;
      maxActive = Math.max(maxActive, ++active);
      await sleep(70);
      active--;
    });
    scheduler.add(target("slow", 1));
    scheduler.start();
    await waiter.until(() => calls >= 3, "three probes of the slow target", 3000);
    expect(maxActive).toBe(1);
  });

  it("after a clock jump of many intervals, resumes at the interval without a catch-up burst", async () => {
    let offset = 0;
    const starts: number[] = [];
    const { scheduler, waiter } = passingScheduler({ intervalMs: 40, now: () => performance.now() + offset }, () => {
      starts.push(performance.now());
      // The whole process stalls for 25 intervals right after the first probe.
      if (starts.length === 1) offset += 1000;
    });
    scheduler.add(target("t", 1));
    scheduler.start();
    await waiter.until(() => starts.length >= 5, "five probes", 3000);
    const gaps = starts.slice(2).map((t, i) => t - (starts[i + 1] ?? 0));
    for (const gap of gaps) expect(gap).toBeGreaterThan(20);
  });

  it("after a probe that outlasts several intervals, probes again at the next slot, not at once", async () => {
    let offset = 0;
    const now = (): number => performance.now() + offset;
    const starts: number[] = [];
    // random 0: the second probe keeps the first one's phase.
    const { scheduler, waiter } = passingScheduler({ intervalMs: 50, now, random: () => 0 }, () => {
      starts.push(now());
      // The first probe "takes" 175 ms of the scheduler's clock: slots at 50, 100 and 150 pass meanwhile.
      if (starts.length === 1) offset += 175;
    });
    const added = now();
    scheduler.add(target("t", 1));
    scheduler.start();
    await waiter.until(() => starts.length >= 3, "three probes", 3000);
    // Timers never fire early: the second probe waits for the 200 ms slot, not ~175 ms (at once).
    expect(starts[1]).toBeGreaterThanOrEqual(added + 200);
    expect(starts[1]).toBeLessThan(added + 200 + 1000);
    expect(starts[2]).toBeGreaterThanOrEqual(added + 250);
  });

  it("dispatches at most batchSize probes per macrotask", async () => {
    let macrotask = 0;
    let ticking = true;
    const tick = (): void => {
      macrotask++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    cleanups.push(() => (ticking = false));
    const byMacrotask = new Map<number, number>();
    let total = 0;
    const { scheduler, waiter } = passingScheduler({ intervalMs: 10_000, maxConcurrent: 1000, batchSize: 5 }, () => {
      byMacrotask.set(macrotask, (byMacrotask.get(macrotask) ?? 0) + 1);
      total++;
    });
    for (let i = 0; i < 50; i++) scheduler.add(target(`t${i}`, 1));
    scheduler.start();
    await waiter.until(() => total === 50, "all fifty first probes", 3000);
    expect(Math.max(...byMacrotask.values())).toBeLessThanOrEqual(5);
    expect(byMacrotask.size).toBeGreaterThanOrEqual(10);
  });

  it("reuses one signal per target across probes, and a fresh one after stop() and start()", async () => {
    const signals: AbortSignal[] = [];
    const { scheduler, waiter } = passingScheduler({ intervalMs: 20, maxConcurrent: 2 }, (_t, signal) => signals.push(signal));
    scheduler.add(target("t", 1));
    scheduler.start();
    await waiter.until(() => signals.length >= 3, "three probes", 3000);
    expect(new Set(signals).size).toBe(1);
    await scheduler.stop();
    const before = signals.length;
    scheduler.start();
    await waiter.until(() => signals.length >= before + 2, "two probes after the restart", 3000);
    const after = signals.slice(before);
    expect(after[0]).not.toBe(signals[0]);
    expect(after.every((s) => s === after[0] && !s.aborted)).toBe(true);
  });

  it("a target removed while queued for a slot is never probed, and stop() still waits for the one in flight", async () => {
    const probed: string[] = [];
    let release!: () => void;
    const waiter = new Waiter();
    const scheduler = new ProbeScheduler({
      intervalMs: 10_000,
      maxConcurrent: 1,
      batchSize: 10,
      firstProbeMaxDelayMs: 0,
      random: () => 0,
      probe: (t, signal) =>
        new Promise((resolve) => {
          probed.push(t.id);
          waiter.notify();
          release = () => resolve({ ok: true, status: 200 });
          signal.addEventListener("abort", () => resolve({ ok: false, reason: "aborted" }));
        }),
      onResult: () => undefined,
    });
    scheduler.add(target("a", 1));
    scheduler.add(target("b", 2));
    scheduler.start();
    // Both are due in the same tick: one takes the only slot, the other waits in the queue.
    await waiter.until(() => probed.length === 1, "one probe to take the only slot", 3000);
    const running = probed[0];
    scheduler.remove(running === "a" ? "b" : "a");
    release();
    await scheduler.stop();
    expect(probed).toEqual([running]);
  });

  it("probes at most maxConcurrent targets at once, the rest in due order as slots free", async () => {
    const held = new Map<string, http.ServerResponse>();
    let maxHeld = 0;
    const server = await startHttp((req, res) => {
      held.set(req.url ?? "", res);
      maxHeld = Math.max(maxHeld, held.size);
      h.waiter.notify();
    });
    cleanups.push(() => server.close());
    const answer = (id: string): void => {
      held.get(`/${id}`)?.end('{"status":"up"}');
      held.delete(`/${id}`);
    };
    // t0..t4 drawn due at 0.8, 0.2, 0.6, 0 and 0.4 ms.
    const clock = fixedDueOrder([0.8, 0.2, 0.6, 0, 0.4]);
    const h = harness({ intervalMs: 60_000, maxConcurrent: 2, ...clock.options });
    h.scheduler.start();
    for (let i = 0; i < 5; i++) h.scheduler.add({ id: `t${i}`, host: "127.0.0.1", port: server.port, path: `/t${i}` });
    clock.due();
    const dueOrder = ["t3", "t1", "t4", "t2", "t0"];
    await h.waiter.until(() => held.size === 2, "two probes held by the server", 5000);
    expect(h.started).toEqual(dueOrder.slice(0, 2));
    for (let i = 2; i < dueOrder.length; i++) {
      // The oldest probe held is answered: its slot goes to the next target due, and only to it.
      answer(dueOrder[i - 2]!);
      await h.waiter.until(() => held.size === 2, `the probe of ${dueOrder[i]} after ${dueOrder[i - 2]} was answered`, 5000);
      expect(h.started).toEqual(dueOrder.slice(0, i + 1));
    }
    answer(dueOrder[3]!);
    answer(dueOrder[4]!);
    await h.waiter.until(() => dueOrder.every((id) => h.count(id) === 1), "a result for every target", 5000);
    expect(dueOrder.every((id) => h.results.get(id)?.[0]?.ok)).toBe(true);
    expect([maxHeld, h.maxInFlight()]).toEqual([2, 2]);
  });

  it("works off a backlog of 300 due probes in due order, never more than maxConcurrent at once", async () => {
    const s = await healthy();
    const n = 300;
    // Target i is due at rank (7i mod 300): a fixed permutation of the insertion order.
    const rank = (i: number): number => (i * 7) % n;
    const clock = fixedDueOrder(Array.from({ length: n }, (_, i) => rank(i) / n));
    const h = harness({ intervalMs: 60_000, maxConcurrent: 3, batchSize: n, ...clock.options });
    h.scheduler.start();
    for (let i = 0; i < n; i++) h.scheduler.add(target(`t${i}`, s.port));
    clock.due();
    await h.waiter.until(() => h.settled.length === n, "a probe of all 300 targets", 10_000);
    const dueOrder = Array.from({ length: n }, (_, i) => i).sort((a, b) => rank(a) - rank(b)).map((i) => `t${i}`);
    expect(h.started).toEqual(dueOrder);
    expect(h.maxInFlight()).toBe(3);
    expect(h.settled.every((x) => x.result.ok)).toBe(true);
  });

  it("keeps re-probes of targets that failed yieldAfterFailures times in a row to their share of the slots, so the others' probes do not queue behind them", async () => {
    // One slot; six dead targets whose probes take 30 ms each, 180 ms a round against a 50 ms interval.
    const { scheduler, starts, waiter, deadProbes } = oneSlotOverDeadAndLive({ deadMs: 30, liveMs: 1, yieldAfterFailures: 2 });
    for (let i = 0; i < 6; i++) scheduler.add(target(`dead${i}`, 1));
    scheduler.add(target("live", 1));
    scheduler.start();
    const live = (): number[] => starts.filter((s) => s.id === "live").map((s) => s.at);
    await waiter.until(() => live().length >= 20, "twenty probes of the live target", 10_000);
    await scheduler.stop();
    // Once the dead targets yield (after their second failure), the live one waits at most for
    // the dead probe holding the slot: behind their backlog it would wait a whole round.
    const gaps = live().slice(6).map((at, i) => at - live()[i + 5]!);
    expect(gaps.reduce((a, b) => a + b, 0) / gaps.length).toBeLessThan(90);
    // A dead target's first two probes were in good standing (lag counted); the rest yielded.
    expect(deadProbes()).toBeGreaterThan(6 * 2);
    expect(scheduler.lagStats().count).toBe(starts.length - deadProbes() + 6 * 2);
  });

  it("keeps re-probing failing targets however busy the slots are with the others, and a target added as failing yields at once", async () => {
    // One slot, saturated by six targets in good standing (20 ms probes every 50 ms).
    const { scheduler, starts, waiter, deadProbes } = oneSlotOverDeadAndLive({ deadMs: 20, liveMs: 20 });
    for (let i = 0; i < 6; i++) scheduler.add(target(`live${i}`, 1));
    scheduler.add(target("dead", 1), { failing: true });
    scheduler.start();
    await waiter.until(() => deadProbes() >= 5, "five re-probes of the failing target", 10_000);
    await scheduler.stop();
    // A failing target's probes never count in the lag: it was added as found unhealthy.
    expect(scheduler.lagStats().count).toBe(starts.length - deadProbes());
  });

  it("gives the slot of a probe that throws or rejects to the next target, reporting the failure", async () => {
    const ok = await healthy();
    const prober = new HttpProber({ timeoutMs: 2000 });
    cleanups.push(() => prober.close());
    const waiter = new Waiter();
    const results: [string, ProbeResult][] = [];
    const clock = fixedDueOrder([0, 0.3, 0.6]);
    const scheduler = new ProbeScheduler({
      intervalMs: 60_000,
      maxConcurrent: 1,
      batchSize: 10,
      ...clock.options,
      probe: (t, signal) => {
        if (t.id === "throws") throw new Error("threw instead of returning a promise");
        if (t.id === "rejects") return Promise.reject(new Error("rejected"));
        return prober.probe(t, signal);
      },
      onResult: (t, r) => {
        results.push([t.id, r]);
        waiter.notify();
      },
    });
    cleanups.push(() => scheduler.stop());
    scheduler.start();
    for (const id of ["throws", "rejects", "http"]) scheduler.add(target(id, ok.port));
    clock.due();
    await waiter.until(() => results.length === 3, "a result for each of the three targets through one slot", 5000);
    expect(results).toEqual([
      ["throws", { ok: false, reason: "threw instead of returning a promise" }],
      ["rejects", { ok: false, reason: "rejected" }],
      ["http", expect.objectContaining({ ok: true, status: 200 })],
    ]);
    expect(ok.requests.length).toBe(1);
  });

  it("replaces a target with the same id and reports under the new endpoint", async () => {
    const first = await healthy();
    const second = await healthy();
    const h = harness({ intervalMs: 30 });
    h.scheduler.add(target("x", first.port));
    h.scheduler.start();
    await h.waiter.until(() => h.count("x") >= 1, "a probe of the first endpoint", 3000);
    h.scheduler.add(target("x", second.port));
    expect(h.scheduler.size).toBe(1);
    await h.waiter.until(() => second.requests.length >= 2, "probes of the replacement endpoint", 3000);
    const firstCount = first.requests.length;
    await h.waiter.until(() => second.requests.length >= 5, "more probes of the replacement endpoint", 3000);
    expect(first.requests.length).toBe(firstCount);
  });
});

describe("ProbeScheduler first-probe spread", () => {
  it("spreads targets added with spreadOverInterval over the whole interval, new ones within firstProbeMaxDelayMs", async () => {
    const { ProbeScheduler } = await import("../../src/health/probe-scheduler.js");
    const started = performance.now();
    const firstProbe = new Map<string, number>();
    let resolveBoth!: () => void;
    const both = new Promise<void>((resolve) => (resolveBoth = resolve));
    const scheduler = new ProbeScheduler({
      intervalMs: 600,
      maxConcurrent: 4,
      batchSize: 10,
      firstProbeMaxDelayMs: 0,
      random: () => 0.99, // the far end of whatever spread applies
      probe: async (target) => {
        if (!firstProbe.has(target.id)) firstProbe.set(target.id, performance.now() - started);
        if (firstProbe.size === 2) resolveBoth();
        return { ok: true, status: 200 };
      },
      onResult: () => {},
    });
    scheduler.add({ id: "loaded", host: "127.0.0.1", port: 1, path: "/health" }, { spreadOverInterval: true });
    scheduler.add({ id: "new", host: "127.0.0.1", port: 2, path: "/health" });
    scheduler.start();
    await both;
    await scheduler.stop();
    expect(firstProbe.get("new")).toBeLessThan(300);
    expect(firstProbe.get("loaded")).toBeGreaterThanOrEqual(500); // 0.99 x 600 ms
  });
});
