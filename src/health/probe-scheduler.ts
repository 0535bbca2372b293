import { performance } from "node:perf_hooks";
import PQueue from "p-queue";
import { DueHeap, type HeapNode } from "./due-heap.js";
import type { ProbeResult, ProbeTarget } from "./http-probe.js";

/** How a {@link ProbeScheduler} paces and bounds probes; see SPEC 4.2. */
export interface ProbeSchedulerOptions {
  /** Each target is probed once per interval. */
  intervalMs: number;
  /** Most probes in flight at once (p-queue concurrency). */
  maxConcurrent: number;
  /** Most due probes handled per timer tick; the rest wait for the next macrotask. */
  batchSize: number;
  /** Runs one probe; must settle soon after `signal` aborts. */
  probe: (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;
  /** Receives every result of a target still scheduled; may throw without harm. */
  onResult: (target: ProbeTarget, result: ProbeResult) => void;
  /** Receives errors thrown by `onResult` (or `probe`'s unexpected ones). */
  onError?: (err: unknown) => void;
  /** A new target's first probe comes after a random delay in [0, min(this, intervalMs)]; default 1000. */
  firstProbeMaxDelayMs?: number;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
  /** Jitter source in [0, 1); default `Math.random`. */
  random?: () => number;
}

/** How late probes started against their due time, in ms, over the last 1024 probes. */
export interface LagStats {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

interface Run {
  readonly controller: AbortController;
  settled: Promise<void>;
}

interface Entry {
  target: ProbeTarget;
  node: HeapNode<Entry> | undefined;
  run: Run | undefined;
}

const LAG_SAMPLES = 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Probes each target once per interval, on its own schedule.
 *
 * Due times live in a min-heap with one timer armed for the earliest, so a
 * slow or dead target only ever occupies one concurrency slot and never holds
 * back a round (there are no rounds). A target still in flight when due
 * again is skipped for that slot rather than overlapped. New targets start
 * at a random offset so targets added together are not probed in lockstep.
 *
 * @example
 * const prober = new HttpProber({ timeoutMs: 2000 });
 * const scheduler = new ProbeScheduler({
 *   intervalMs: 5000, maxConcurrent: 10, batchSize: 100,
 *   probe: (t, signal) => prober.probe(t, signal),
 *   onResult: (t, r) => console.log(t.id, r.ok),
 * });
 * scheduler.add({ id: "a", host: "127.0.0.1", port: 8080, path: "/health" });
 * scheduler.start();
 * // ... later
 * await scheduler.stop();
 */
export class ProbeScheduler {
  readonly #o: Required<Omit<ProbeSchedulerOptions, "onError">> & Pick<ProbeSchedulerOptions, "onError">;
  readonly #queue: PQueue;
  readonly #entries = new Map<string, Entry>();
  readonly #heap = new DueHeap<Entry>();
  readonly #runs = new Set<Run>();
  readonly #lag = new Float64Array(LAG_SAMPLES);
  #lagTotal = 0;
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = Infinity;
  #immediate: NodeJS.Immediate | undefined;

  constructor(options: ProbeSchedulerOptions) {
    for (const key of ["intervalMs", "maxConcurrent", "batchSize"] as const) {
      if (!(options[key] > 0 && Number.isFinite(options[key]))) {
        throw new RangeError(`${key} must be a positive number, got ${options[key]}`);
      }
    }
    this.#o = {
      ...options,
      firstProbeMaxDelayMs: Math.max(0, options.firstProbeMaxDelayMs ?? 1000),
      now: options.now ?? (() => performance.now()),
      random: options.random ?? Math.random,
    };
    this.#queue = new PQueue({ concurrency: options.maxConcurrent });
  }

  /**
   * Schedules `target`, replacing one with the same id. Re-adding an unchanged
   * endpoint keeps its schedule. A new target is first probed within
   * `firstProbeMaxDelayMs`; with `spreadOverInterval` (targets loaded after a
   * restart) within a whole interval instead, so thousands of them are not
   * probed in one burst and then in step forever.
   */
  add(target: ProbeTarget, options: { spreadOverInterval?: boolean } = {}): void {
    const old = this.#entries.get(target.id);
    if (old && old.target.host === target.host && old.target.port === target.port && old.target.path === target.path) {
      old.target = target;
      return;
    }
    if (old) this.#drop(old);
    const entry: Entry = { target, node: undefined, run: undefined };
    this.#entries.set(target.id, entry);
    entry.node = this.#heap.push(this.#firstDue(options.spreadOverInterval ?? false), entry);
    if (this.#running) this.#arm();
  }

  /** Unschedules a target; its in-flight probe is aborted and its result dropped. */
  remove(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    this.#drop(entry);
  }

  /** Whether a target with this id is scheduled. */
  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** Number of scheduled targets. */
  get size(): number {
    return this.#entries.size;
  }

  /** Starts probing. Targets overdue by then (added before start, or left by a stop) get a fresh jittered start. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const now = this.#o.now();
    for (const entry of this.#entries.values()) {
      if (entry.node && entry.node.due < now) {
        this.#heap.remove(entry.node);
        entry.node = this.#heap.push(this.#firstDue(false), entry);
      }
    }
    this.#arm();
  }

  /** Stops probing: aborts in-flight probes and resolves once they settled; no `onResult` comes after. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    for (const run of this.#runs) run.controller.abort();
    await Promise.all([...this.#runs].map((run) => run.settled));
  }

  /** Lag (probe start minus due time) over the most recent probes; all zero before the first. */
  lagStats(): LagStats {
    const count = Math.min(this.#lagTotal, LAG_SAMPLES);
    if (count === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
    const sorted = this.#lag.slice(0, count).sort();
    const at = (q: number): number => sorted[Math.min(count - 1, Math.max(0, Math.ceil(q * count) - 1))] ?? 0;
    return { count, p50: at(0.5), p99: at(0.99), max: sorted[count - 1] ?? 0 };
  }

  #firstDue(overInterval: boolean): number {
    const spread = overInterval ? this.#o.intervalMs : Math.min(this.#o.firstProbeMaxDelayMs, this.#o.intervalMs);
    return this.#o.now() + this.#o.random() * spread;
  }

  #drop(entry: Entry): void {
    if (entry.node) this.#heap.remove(entry.node);
    entry.node = undefined;
    entry.run?.controller.abort();
  }

  #arm(): void {
    const top = this.#heap.peek();
    // A pending batch continuation re-arms when it finishes.
    if (!top || this.#immediate) return;
    if (this.#timer && this.#timerDue <= top.due) return;
    clearTimeout(this.#timer);
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(top.due - this.#o.now())));
    this.#timer = setTimeout(this.#tick, delay);
    this.#timer.unref();
    this.#timerDue = top.due;
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    this.#timerDue = Infinity;
    this.#immediate = undefined;
    if (!this.#running) return;
    const now = this.#o.now();
    for (let handled = 0; handled < this.#o.batchSize; handled++) {
      const top = this.#heap.peek();
      if (!top || top.due > now) break;
      this.#heap.pop();
      this.#fire(top.value, top.due, now);
    }
    const top = this.#heap.peek();
    if (top && top.due <= now) {
      // Yield to I/O between batches so a large due set cannot hog the loop.
      this.#immediate = setImmediate(this.#tick);
      this.#immediate.unref();
    } else {
      this.#arm();
    }
  };

  #fire(entry: Entry, due: number, now: number): void {
    const interval = this.#o.intervalMs;
    let next = due + interval;
    // Far behind (a stalled loop): skip missed slots but keep the jittered phase.
    if (now - next > interval) next += Math.ceil((now - next) / interval) * interval;
    entry.node = this.#heap.push(next, entry);
    if (entry.run) return;
    this.#dispatch(entry, due);
  }

  #dispatch(entry: Entry, due: number): void {
    const controller = new AbortController();
    const { signal } = controller;
    const target = entry.target;
    const run: Run = { controller, settled: Promise.resolve() };
    const task = async (): Promise<void> => {
      // Aborted while queued for a slot: nothing to do, give the slot back.
      if (signal.aborted) return;
      this.#recordLag(this.#o.now() - due);
      let result: ProbeResult;
      try {
        result = await this.#o.probe(target, signal);
      } catch (err) {
        result = { ok: false, reason: err instanceof Error ? err.message : String(err) };
      }
      if (signal.aborted) return;
      try {
        this.#o.onResult(target, result);
      } catch (err) {
        this.#report(err);
      }
    };
    run.settled = this.#queue
      .add(task)
      .catch((err: unknown) => this.#report(err))
      .finally(() => {
        if (entry.run === run) entry.run = undefined;
        this.#runs.delete(run);
      });
    entry.run = run;
    this.#runs.add(run);
  }

  #recordLag(ms: number): void {
    this.#lag[this.#lagTotal % LAG_SAMPLES] = Math.max(0, ms);
    this.#lagTotal++;
  }

  #report(err: unknown): void {
    try {
      this.#o.onError?.(err);
    } catch {
      // An onError that throws has nowhere left to report to.
    }
  }
}
