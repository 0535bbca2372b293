import { afterEach, describe, expect, it } from "vitest";
import { EventType } from "../../gen/registry/v1/registry.js";
import { startBlackhole } from "../support/blackhole.js";
import { keyAuth, register, startHarness, WatchCursor } from "../support/registry-harness.js";
import { startHttp } from "./helpers.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const INTERVAL_MS = 300;
const TIMEOUT_MS = 500;
const SLOTS = 2;
/** Far more dead instances than the slots can re-probe each interval: 40 × 0.5 s ÷ 2 slots = 10 s a round. */
const DEAD = 40;

/**
 * Instances that accept and never answer (a partition, a rack gone dark)
 * each hold a probe slot for the whole timeout. When there are more of them
 * than the slots can probe each interval, their re-probes must not queue in
 * front of the probes of instances in good standing: a live instance that
 * dies then would be seen only after every dead one had been probed again.
 */
describe("a backlog of dead instances' re-probes", () => {
  it("does not delay noticing that a live instance died", async () => {
    const h = await startHarness({
      registry: {
        healthChecks: true,
        healthCheckInterval: INTERVAL_MS,
        healthCheckTTL: TIMEOUT_MS,
        healthCheckMaxRequests: SLOTS,
        massFailureThreshold: 0,
        panicThreshold: 0,
        deregisterAfter: 0,
      },
    });
    cleanups.push(() => h.close());
    const watch = WatchCursor.open(h.client, { serviceType: "api" }, keyAuth());
    cleanups.push(() => watch.cancel());
    const failed = new Set<string>();
    const nextFailure = async (timeoutMs: number): Promise<string> => {
      for (;;) {
        const m = await watch.next(timeoutMs);
        if (m.type === EventType.EVENT_TYPE_HEALTH_CHECK_FAILED && m.instance && !failed.has(m.instance.id)) {
          failed.add(m.instance.id);
          return m.instance.id;
        }
      }
    };

    let probed: (() => void) | undefined;
    const live = await startHttp((_req, res) => {
      res.end('{"status":"up"}');
      probed?.();
    });
    cleanups.push(() => live.close());
    const canary = await register(h, "api", live.port);
    const dead: string[] = [];
    for (let i = 0; i < DEAD; i++) {
      const hole = await startBlackhole();
      cleanups.push(() => hole.close());
      dead.push((await register(h, "api", hole.port)).id);
    }
    // Each dead instance fails its first probe (in good standing until then) ...
    while (dead.some((id) => !failed.has(id))) await nextFailure(15_000);
    // ... and then keeps being probed, filling every slot, while the canary still passes.
    expect(failed.has(canary.id)).toBe(false);
    // It dies right after a probe it passed: its next probe is a whole interval away, and without
    // a share of the slots for the dead ones' re-probes it would queue behind all of them.
    await new Promise<void>((resolve) => (probed = resolve));
    await live.close();
    const diedAt = Date.now();
    expect(await nextFailure(15_000)).toBe(canary.id);
    const seenAfter = Date.now() - diedAt;
    // Its next probe is due an interval later and fails at once (connection refused); the dead
    // ones' re-probes hold at most half the slots. Behind their backlog it waited a round (10 s).
    expect(seenAfter).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + 700);
  }, 60_000);
});
