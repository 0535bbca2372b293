import { RegistryError } from "../registry/registry-error.js";
import type { WatchEvent } from "../registry/types.js";
import { resumePoint, type Watcher } from "../registry/watcher.js";

/** A transport's stream, as a watch pump writes to it. */
export interface WatchSink {
  /** Writes one event; false when the stream's buffer is full and the pump must wait for `whenDrained`. */
  write(event: WatchEvent): boolean;
  /** Calls `resume` once, when the stream's buffer has room again. */
  whenDrained(resume: () => void): void;
  /** The client has gone (a cancelled call): the pump ends without writing more. */
  readonly gone: boolean;
  /** Ends the stream: with nothing when the watcher ended cleanly or the client went away, else with `error`. */
  end(error?: unknown): void;
}

/** How a pump treats a client that does not read. */
export interface WatchPumpOptions {
  /** A stream that accepts nothing this long is ended with RESOURCE_EXHAUSTED naming where to resume. */
  readonly stallTimeoutMs: number;
  /** How the transport's clients spell the resume point in a request (`since_revision`, `sinceRevision`). */
  readonly resumeParameter: string;
}

/**
 * Moves a watcher's events to a transport's stream as the stream can take
 * them: every transport's watch does the same. Events are written from
 * inside the call that produced them (a publish, the bookmark timer), with
 * no promise or task per event, until the watcher has none or the stream's
 * buffer is full; then the stream takes nothing until it drains (the watcher
 * parks meanwhile if its queue fills, and later catches up from history),
 * and a stream that stays full for the stall timeout is ended. The pump ends
 * the stream (`sink.end`) when the watcher ends, the client goes, a write
 * throws or the stall timer fires; its owner ends it for anything else
 * (shutdown, a revoked key) by calling `stop` and then ending the stream.
 */
export class WatchPump {
  private stopped = false;
  /** The watcher may wake its consumer from inside poll(): one pump at a time. */
  private pumping = false;
  private stallTimer: NodeJS.Timeout | undefined;
  /** The revision a client holding every event written so far resumes from. */
  resumeRevision: number;

  constructor(
    private readonly watcher: Watcher,
    private readonly sink: WatchSink,
    private readonly options: WatchPumpOptions,
    since: number,
  ) {
    this.resumeRevision = since;
  }

  /** Starts taking the watcher's events: those it has now, then each as it comes. */
  start(): void {
    this.watcher.consume(this.pump);
    this.pump();
  }

  /** True while the stream's buffer is full: a status written now would queue behind what the client does not take. */
  get blocked(): boolean {
    return this.stallTimer !== undefined;
  }

  /** Stops writing and ends the watcher; the stream is its owner's to end. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.stallTimer);
    this.watcher.end();
  }

  /** Woken by the watcher (a publish, its bookmark timer, its end) and by the drain; an ended watcher ends the stream even while it waits for the drain. */
  private readonly pump = (): void => {
    const { watcher, sink } = this;
    if (this.stopped || this.pumping) return;
    if (watcher.closed) return this.finish(watcher.endError);
    if (this.stallTimer !== undefined) return;
    this.pumping = true;
    try {
      for (;;) {
        if (sink.gone) return this.finish();
        const event = watcher.poll();
        if (event === undefined) {
          if (watcher.closed) this.finish(watcher.endError);
          return;
        }
        const writable = sink.write(event);
        this.resumeRevision = resumePoint(event, this.resumeRevision);
        if (!writable) {
          this.stallTimer = setTimeout(this.onStall, this.options.stallTimeoutMs);
          sink.whenDrained(this.onDrain);
          return;
        }
      }
    } catch (err) {
      this.finish(err); // e.g. an event that failed to encode: this stream ends, the publisher goes on
    } finally {
      this.pumping = false;
    }
  };

  private readonly onDrain = (): void => {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.pump();
  };

  private readonly onStall = (): void => {
    const { stallTimeoutMs, resumeParameter } = this.options;
    this.finish(
      new RegistryError("resource_exhausted", `watch stream accepted nothing for ${stallTimeoutMs} ms; resume with ${resumeParameter}=${this.resumeRevision}`),
    );
  };

  /** Ends the stream from inside the pump; `blocked` still says whether it was waiting for a drain. */
  private finish(error?: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.watcher.end();
    this.sink.end(error);
    clearTimeout(this.stallTimer);
  }
}
