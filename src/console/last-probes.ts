import type { ServiceRegistry } from "../registry/service-registry.js";

/** The latest probe of one instance, as the console shows it. */
export interface LastProbe {
  /** When it finished (epoch ms). */
  readonly at: number;
  readonly ms: number;
  readonly ok: boolean;
}

/** Why an instance last failed its check, and when (epoch ms). */
export interface LastFailure {
  readonly reason: string;
  readonly at: number;
}

/**
 * What the console shows beside an instance that the registry does not keep:
 * its latest probe (when, how long, passed or not) and its latest failure
 * reason, probed and reported kinds alike. One entry per live instance,
 * dropped with it.
 */
export class LastProbes {
  private readonly probes = new Map<string, LastProbe>();
  private readonly failures = new Map<string, LastFailure>();

  constructor(
    private readonly registry: ServiceRegistry,
    private readonly now: () => number = Date.now,
  ) {
    registry.on("healthCheckFailed", (instance, reason) => this.failures.set(instance.id, { reason, at: this.now() }));
    registry.on("instanceRemoved", (instance) => {
      this.probes.delete(instance.id);
      this.failures.delete(instance.id);
    });
  }

  /** A probe of `id` finished after `seconds` (fed by the probe wrapper the metrics use too). */
  probed(id: string, seconds: number, ok: boolean): void {
    // A probe can finish after its instance was removed (and its entry dropped): keeping it would leak.
    if (!this.registry.has(id)) return;
    this.probes.set(id, { at: this.now(), ms: seconds * 1000, ok });
  }

  probeOf(id: string): LastProbe | undefined {
    return this.probes.get(id);
  }

  failureOf(id: string): LastFailure | undefined {
    return this.failures.get(id);
  }
}
