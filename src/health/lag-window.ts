/** How late probes started against their due time, in ms, over the last 1024 probes. */
export interface LagStats {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

const LAG_SAMPLES = 1024;

/**
 * The most recent schedule lags in a fixed ring, so recording costs one
 * store per probe and only reading the figures (a metrics scrape) sorts.
 */
export class LagWindow {
  readonly #samples = new Float64Array(LAG_SAMPLES);
  #total = 0;

  /** Records one probe's lag; an early start counts as zero. */
  record(ms: number): void {
    this.#samples[this.#total % LAG_SAMPLES] = Math.max(0, ms);
    this.#total++;
  }

  /** p50, p99 and max over the window; all zero before the first sample. */
  stats(): LagStats {
    const count = Math.min(this.#total, LAG_SAMPLES);
    if (count === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
    const sorted = this.#samples.slice(0, count).sort();
    const at = (q: number): number => sorted[Math.min(count - 1, Math.max(0, Math.ceil(q * count) - 1))] ?? 0;
    return { count, p50: at(0.5), p99: at(0.99), max: sorted[count - 1] ?? 0 };
  }
}
