import { performance } from "node:perf_hooks";
import PQueue from "p-queue";
import { DueHeap, type HeapNode } from "./due-heap.js";
import type { ProbeResult, ProbeTarget } from "./http-probe.js";
import { LagWindow, type LagStats } from "./lag-window.js";
import type { ProbeSchedulerOptions } from "./probe-scheduler-options.js";

export type { LagStats } from "./lag-window.js";
export type { ProbeSchedulerOptions } from "./probe-scheduler-options.js";

interface Entry {
  target: ProbeTarget;
  node: HeapNode<Entry> | undefined;
  /** Aborted when the entry is dropped or the scheduler stops; replaced at the next dispatch after that. */
  controller: AbortController | undefined;
  /** Queued for a slot or probing. */
  inFlight: boolean;
  /** Due time of the probe in flight, for the lag figure. */
  due: number;
  /** Its first probe came soon after it was added: the next lands anywhere in the interval after. */
  spreadNext: boolean;
  /** Its probes that failed since the last that passed. */
  failuresInARow: number;
  /** Its probe in flight was dispatched as a re-probe of a failing target (see #yields). */
  yielding: boolean;
  /** The queue's task, made once per entry rather than once per probe. */
  readonly task: () => Promise<void>;
}

/** The longest delay a Node timer holds; a longer one fires at once, so longer waits are taken in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Probes each target once per interval, on its own schedule.
 *
 * Due times live in a min-heap with one timer armed for the earliest, so a
 * slow or dead target only ever occupies one concurrency slot and never holds
 * back a round (there are no rounds). A target still in flight when due
 * again is skipped for that slot rather than overlapped: it leaves the heap
 * when its probe is dispatched and comes back when the probe is over. New targets start
 * at a random offset so targets added together are not probed in lockstep.
 *
 * Due probes wait for a slot in p-queue, the user's choice for probe
 * concurrency: one FIFO bounded by `maxConcurrent`, so a backlog is worked
 * off in due order. Re-probes of a target whose last `yieldAfterFailures`
 * probes failed may hold at most half the slots (one at least): beyond that
 * they wait in a FIFO of their own before p-queue. A dead target (no answer,
 * no reset) holds its slot for a whole timeout, and when there are more of
 * them than the slots can re-probe each interval (a partition, a rack gone
 * dark), their backlog would otherwise delay every other probe, and with it
 * noticing that a live target died; their share of the slots keeps them
 * probed (a recovery is seen, an expiry comes) however busy the others are.
 * The lag figure is of probes in good standing: re-probes of failing
 * targets run late by design when they are many.
 *
 * Each target keeps one AbortController across its probes (aborted only by
 * remove or stop) and one task function, and is queued with
 * no per-task signal or timeout: the prober has its own deadline, and a probe
 * aborted while queued ends as soon as it reaches a slot. What p-queue's
 * bookkeeping costs per probe, beside a bare FIFO, is a figure of the
 * bench's probing scenario.
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
  /** Re-probes of failing targets waiting for their share of the slots, in due order (a Set keeps insertion order). */
  readonly #waitingReprobes = new Set<Entry>();
  /** Re-probes in p-queue, queued or running: at most #reprobeSlots. */
  #reprobesQueued = 0;
  readonly #reprobeSlots: number;
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];
  readonly #lag = new LagWindow();
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
      yieldAfterFailures: Math.max(1, options.yieldAfterFailures ?? 1),
      now: options.now ?? (() => performance.now()),
      random: options.random ?? Math.random,
    };
    this.#queue = new PQueue({ concurrency: Math.ceil(options.maxConcurrent) });
    this.#reprobeSlots = Math.max(1, Math.floor(Math.ceil(options.maxConcurrent) / 2));
  }

  /**
   * Schedules `target`, replacing one with the same id. Re-adding an unchanged
   * endpoint keeps its schedule. A new target is first probed within
   * `firstProbeMaxDelayMs`; with `spreadOverInterval` (targets loaded after a
   * restart) within a whole interval instead, so thousands of them are not
   * probed in one burst and then in step forever.
   */
  add(target: ProbeTarget, options: { spreadOverInterval?: boolean; failing?: boolean } = {}): void {
    const old = this.#entries.get(target.id);
    if (old && old.target.host === target.host && old.target.port === target.port && old.target.path === target.path) {
      old.target = target;
      return;
    }
    if (old) this.#drop(old);
    const entry: Entry = {
      target,
      node: undefined,
      controller: undefined,
      inFlight: false,
      due: 0,
      spreadNext: !(options.spreadOverInterval ?? false),
      failuresInARow: options.failing ? Infinity : 0,
      yielding: false,
      task: () => this.#run(entry),
    };
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
        entry.spreadNext = true;
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
    // Dropped entries were aborted when dropped; only scheduled ones can be running unaborted.
    for (const entry of this.#entries.values()) if (entry.inFlight) entry.controller?.abort();
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Lag (probe start minus due time) over the most recent probes of targets in good standing; all zero before the first. */
  lagStats(): LagStats {
    return this.#lag.stats();
  }

  #firstDue(overInterval: boolean): number {
    const spread = overInterval ? this.#o.intervalMs : Math.min(this.#o.firstProbeMaxDelayMs, this.#o.intervalMs);
    return this.#o.now() + this.#o.random() * spread;
  }

  #drop(entry: Entry): void {
    if (entry.node) this.#heap.remove(entry.node);
    entry.node = undefined;
    entry.controller?.abort();
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
      this.#fire(top.value, top.due);
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

  #fire(entry: Entry, due: number): void {
    // Out of the heap until its probe is over (see #reschedule).
    entry.node = undefined;
    this.#dispatch(entry, due);
  }

  /**
   * Puts a target whose probe is over back in the heap, at its first slot
   * still ahead (after a first probe: at a random point of the next
   * interval, which sets its phase): slots that passed while it was queued or probing are
   * skipped, never overlapped or made up in a burst, and the jittered phase
   * is kept. Waiting until now, rather than re-pushing at every slot, keeps
   * an overloaded schedule from paying a heap pop and push per skipped slot.
   */
  #reschedule(entry: Entry): void {
    if (entry.node || this.#entries.get(entry.target.id) !== entry) return;
    const interval = this.#o.intervalMs;
    const now = this.#o.now();
    // A target's first probe comes soon after it is added, in the same short
    // window as every target added with it (a fleet starting, a burst of
    // registrations). Its second lands anywhere in the interval after, so
    // such targets take up independent phases instead of being probed in
    // one burst every interval forever.
    let next = entry.due + (entry.spreadNext ? this.#o.random() : 1) * interval;
    entry.spreadNext = false;
    if (next <= now) next += Math.max(1, Math.ceil((now - next) / interval)) * interval;
    entry.node = this.#heap.push(next, entry);
    if (this.#running) this.#arm();
  }

  #dispatch(entry: Entry, due: number): void {
    if (!entry.controller || entry.controller.signal.aborted) entry.controller = new AbortController();
    entry.due = due;
    entry.inFlight = true;
    this.#inFlight++;
    // #run settles normally whatever happens, so the promise needs no handler.
    entry.yielding = this.#yields(entry);
    if (!entry.yielding) {
      void this.#queue.add(entry.task);
      return;
    }
    this.#waitingReprobes.add(entry);
    this.#admitReprobes();
  }

  async #run(entry: Entry): Promise<void> {
    // Set at dispatch and only replaced once this run is over.
    const signal = (entry.controller as AbortController).signal;
    try {
      // Aborted while queued for a slot: nothing to do, give the slot back.
      if (signal.aborted) return;
      if (!entry.yielding) this.#lag.record(this.#o.now() - entry.due);
      const target = entry.target;
      let result: ProbeResult;
      try {
        result = await this.#o.probe(target, signal);
      } catch (err) {
        result = { ok: false, reason: err instanceof Error ? err.message : String(err) };
      }
      if (signal.aborted) return;
      entry.failuresInARow = result.ok ? 0 : entry.failuresInARow + 1;
      try {
        this.#o.onResult(target, result);
      } catch (err) {
        this.#report(err);
      }
    } finally {
      if (entry.yielding) {
        this.#reprobesQueued--;
        this.#admitReprobes();
      }
      entry.inFlight = false;
      this.#reschedule(entry);
      if (--this.#inFlight === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  /** Moves waiting re-probes into p-queue while they hold fewer than their share of the slots. */
  #admitReprobes(): void {
    for (const entry of this.#waitingReprobes) {
      if (this.#reprobesQueued >= this.#reprobeSlots) return;
      this.#waitingReprobes.delete(entry);
      this.#reprobesQueued++;
      void this.#queue.add(entry.task);
    }
  }

  #yields(entry: Entry): boolean {
    return entry.failuresInARow >= this.#o.yieldAfterFailures;
  }

  #report(err: unknown): void {
    try {
      this.#o.onError?.(err);
    } catch {
      // An onError that throws has nowhere left to report to.
    }
  }
}
