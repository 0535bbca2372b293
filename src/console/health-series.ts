import type { ServiceRegistry } from "../registry/service-registry.js";

/** One sample: healthy instances per service type, and the prober's schedule lag. */
export interface HealthSample {
  /** Epoch ms. */
  readonly at: number;
  readonly healthy: Readonly<Record<string, number>>;
  /** p99 of the recent probes' lateness against their schedule (ms); 0 with no probes. */
  readonly probeLagP99Ms: number;
}

/** Options of {@link HealthSeries}. */
export interface HealthSeriesOptions {
  /** Time between samples. Default 10 s. */
  readonly intervalMs?: number;
  /** How far back samples are kept. Default one hour. */
  readonly keepMs?: number;
  /** Service types sampled, the largest first; the rest are left out of the charts. Default 1,000. */
  readonly maxTypes?: number;
}

/**
 * The console's charts, kept in memory and bounded: every `intervalMs`, the
 * healthy count of each service type (the largest `maxTypes`) and the
 * prober's schedule lag, for the last `keepMs`. Sampling reads what the
 * metrics read (ListServices' counts, the prober's lag window); nothing on
 * the write path feeds it.
 */
export class HealthSeries {
  readonly intervalMs: number;
  private readonly capacity: number;
  private readonly maxTypes: number;
  private readonly samples: HealthSample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly registry: ServiceRegistry,
    options: HealthSeriesOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 10_000;
    this.capacity = Math.max(1, Math.ceil((options.keepMs ?? 3_600_000) / this.intervalMs));
    this.maxTypes = options.maxTypes ?? 1000;
  }

  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The samples kept, oldest first. */
  list(): readonly HealthSample[] {
    return this.samples;
  }

  /** Takes one sample now (also what the timer does); skipped while the store is lost (the counts may be stale). */
  sample(): void {
    if (!this.registry.available) return;
    const services = this.registry.listServices().services.sort((a, b) => b.totalCount - a.totalCount).slice(0, this.maxTypes);
    const healthy: Record<string, number> = {};
    for (const s of services) healthy[s.serviceType] = s.healthyCount;
    const lag = this.registry.probeLag();
    this.samples.push({ at: Date.now(), healthy, probeLagP99Ms: lag.count > 0 ? lag.p99 : 0 });
    if (this.samples.length > this.capacity) this.samples.shift();
  }
}
