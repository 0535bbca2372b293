import type { Histogram, Registry } from "prom-client";

/**
 * One histogram series counted in plain numbers: what a hot path (every
 * call, every commit) records. prom-client's own `observe()` hashes the
 * label set on every observation; here the caller keeps the series it
 * got once, and an observation is a bucket search and three additions.
 */
export class HistogramSeries {
  /** Observations per bucket, not cumulative: `buckets[i]` counts values in (bounds[i-1], bounds[i]]. */
  readonly buckets: number[];
  count = 0;
  sum = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.count++;
    this.sum += value;
    const { bounds } = this;
    // As prom-client places a value: the first bound it does not exceed; above them all, only +Inf counts it.
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (this.buckets[i] as number)++;
        return;
      }
    }
  }
}

/** Options of {@link TalliedHistogram}. */
export interface TalliedHistogramOptions {
  readonly name: string;
  readonly help: string;
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

/**
 * A Prometheus histogram whose series are {@link HistogramSeries} counted
 * elsewhere and read only when scraped. It renders exactly as a prom-client
 * `Histogram` with the same observations would (same lines, labels in the
 * same order, series in the order they were created), so dashboards and
 * alerts see no difference.
 *
 * @example
 * const seconds = new TalliedHistogram({ name: "x_seconds", help: "...", buckets: [0.1, 1], registers: [registry] });
 * const ok = seconds.series({ outcome: "ok" }); // once
 * ok.observe(0.02); // on the hot path
 */
export class TalliedHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly name: string;
  readonly help: string;
  private readonly bounds: readonly number[];
  private readonly all: HistogramSeries[] = [];

  constructor(options: TalliedHistogramOptions) {
    this.name = options.name;
    this.help = options.help;
    this.bounds = [...options.buckets];
    // prom-client's registry takes any object with its metrics' shape
    // (name, help, type, get); its typings list only its own classes.
    for (const registry of options.registers) registry.registerMetric(this as unknown as Histogram);
  }

  /** A new series with `labels`; keep it and observe into it. Two series must not share labels. */
  series(labels: Readonly<Record<string, string>>): HistogramSeries {
    const series = new HistogramSeries(labels, this.bounds);
    this.all.push(series);
    return series;
  }

  /** The metric as prom-client's registry reads it at scrape time. */
  get(): { name: string; help: string; type: "histogram"; aggregator: "sum"; values: ScrapedValue[] } {
    const values: ScrapedValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const s of this.all) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += s.buckets[i] as number;
        values.push({ labels: { le: bound, ...s.labels }, value: cumulative, metricName: bucketName, exemplar: null });
      });
      values.push({ labels: { le: "+Inf", ...s.labels }, value: s.count, metricName: bucketName, exemplar: null });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** `Registry.resetMetrics()`: the series belong to their callers and keep counting. */
  reset(): void {}
}

/** One line of the exposition as prom-client's registry formats it. */
interface ScrapedValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName: string;
  /** Buckets carry prom-client's "no exemplar" (exemplars are off), so JSON readers see its shape too. */
  readonly exemplar?: null;
}
