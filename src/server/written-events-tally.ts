/**
 * Counts watch events written to streams, by type, for the metrics, and
 * hands them on once per run of writes of one type: a publish writes its
 * event to every stream it concerns one after the other, so its fan-out
 * reaches `onWritten` as one `(type, streams)` call, and each stream's write
 * costs a comparison and an addition. Events written outside a publish (a
 * snapshot and its SYNCED, a BOOKMARK, a RESET, a catch-up from history) are
 * counted the same way. A run still open is handed on in a microtask, so
 * no count waits for the next write.
 *
 * @example
 * const tally = new WrittenEventsTally((type, n) => metrics.onWatchEventsSent(type, n));
 * tally.add("registered"); // after each write
 */
export class WrittenEventsTally {
  private type: string | undefined;
  private count = 0;
  private flushQueued = false;

  /** A throwing `onWritten` loses the counts it was given, nothing else. */
  constructor(private readonly onWritten: (type: string, count: number) => void) {}

  /** One event of `type` was written to one stream. */
  add(type: string): void {
    if (type !== this.type) {
      this.handOn();
      this.type = type;
    }
    this.count++;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    this.handOn();
  };

  /** Hands the open run on, if any. */
  private handOn(): void {
    const { type, count } = this;
    if (type === undefined || count === 0) return;
    this.count = 0;
    try {
      this.onWritten(type, count);
    } catch {
      // Runs inside a publish or a microtask: a metrics failure must not reach the registry or a stream.
    }
  }
}
