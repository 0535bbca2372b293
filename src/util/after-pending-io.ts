/**
 * Runs `fn` once the I/O waiting now has been read and handled: in the next
 * event-loop turn's check phase, after a poll phase, and after work that
 * I/O queued with setImmediate. At the thaw of a frozen or stalled process
 * the timers run before any socket is read: a timer that defers its verdict
 * so sees what arrived meanwhile (a heartbeat, a probe's answer).
 */
export function afterPendingIo(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}
