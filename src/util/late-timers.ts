/**
 * What a timer can tell of a process that was frozen or stalled (SIGSTOP, a
 * paused VM, a long pause of its event loop). At the thaw the timers run
 * before any socket is read, so a deadline that ran out meanwhile would judge
 * a peer whose answer is waiting, unread. Such a deadline asks `stalledFor`
 * how long to wait once more, and gives its verdict in `afterPendingIo`.
 */

/** Ran this much (ms) after its due time: the process was not listening. Below it, ordinary event-loop lag. */
const LATE_AFTER_MS = 100;

/**
 * How much later than `dueAt` (`performance.now()` time) a timer runs, when
 * that means the process was not listening for that long; 0 otherwise.
 */
export function stalledFor(dueAt: number): number {
  const late = performance.now() - dueAt;
  return late > LATE_AFTER_MS ? late : 0;
}

/**
 * Runs `fn` once the I/O waiting now has been read and handled: in the next
 * event-loop turn's check phase, after a poll phase, and after work that
 * I/O queued with setImmediate.
 */
export function afterPendingIo(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}
