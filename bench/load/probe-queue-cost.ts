import PQueue from "p-queue";

/** CPU per queued task through p-queue (as the probe scheduler uses it) and through a bare FIFO, in µs; medians of the rounds. */
export interface ProbeQueueCost {
  readonly pQueueUs: number;
  readonly fifoUs: number;
  readonly rounds: readonly { readonly pQueueUs: number; readonly fifoUs: number }[];
}

type Enqueue = (task: () => Promise<void>) => void;

/** p-queue exactly as `ProbeScheduler` drives it: one queue, `add()` with no options, the promise dropped. */
function viaPQueue(concurrency: number): Enqueue {
  const queue = new PQueue({ concurrency });
  return (task) => void queue.add(task);
}

/** The ceiling: a counter and an array, FIFO; the least a concurrency bound can cost. */
function viaBareFifo(concurrency: number): Enqueue {
  let running = 0;
  let waiting: (() => Promise<void>)[] = [];
  let head = 0;
  const start = (task: () => Promise<void>): void => {
    running++;
    task().then(finished, finished);
  };
  const finished = (): void => {
    running--;
    if (head === waiting.length) return;
    const next = waiting[head++] as () => Promise<void>;
    if (head === waiting.length) {
      waiting = [];
      head = 0;
    }
    start(next);
  };
  return (task) => (running < concurrency ? start(task) : void waiting.push(task));
}

/** Queues `tasks` empty async tasks at once and runs them `concurrency` at a time; CPU µs per task. */
async function round(make: (concurrency: number) => Enqueue, tasks: number, concurrency: number): Promise<number> {
  const enqueue = make(concurrency);
  let done = 0;
  let drained!: () => void;
  const all = new Promise<void>((resolve) => (drained = resolve));
  const task = async (): Promise<void> => {
    if (++done === tasks) drained();
  };
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < tasks; i++) enqueue(task);
  await all;
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / tasks;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)] ?? 0;

/**
 * What the probe queue costs per probe, beside its ceiling: `tasks` probes
 * queued at once with `concurrency` running, as when the prober is behind,
 * each probe an empty async task so only the queue's own work is measured.
 * Rounds alternate p-queue and the bare FIFO (order swapped each round,
 * after two unmeasured warm-up rounds of each) so both see the same machine.
 */
export async function probeQueueCost(o: { tasks: number; concurrency: number; rounds: number }): Promise<ProbeQueueCost> {
  for (let i = 0; i < 2; i++) {
    await round(viaPQueue, o.tasks, o.concurrency);
    await round(viaBareFifo, o.tasks, o.concurrency);
  }
  const rounds: { pQueueUs: number; fifoUs: number }[] = [];
  for (let i = 0; i < o.rounds; i++) {
    if (i % 2 === 0) {
      const pQueueUs = await round(viaPQueue, o.tasks, o.concurrency);
      rounds.push({ pQueueUs, fifoUs: await round(viaBareFifo, o.tasks, o.concurrency) });
    } else {
      const fifoUs = await round(viaBareFifo, o.tasks, o.concurrency);
      rounds.push({ pQueueUs: await round(viaPQueue, o.tasks, o.concurrency), fifoUs });
    }
  }
  return { pQueueUs: median(rounds.map((r) => r.pQueueUs)), fifoUs: median(rounds.map((r) => r.fifoUs)), rounds };
}
