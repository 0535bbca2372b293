import type { Logger } from "pino";

/** Options of {@link ThrottledWarning}. */
export interface ThrottledWarningOptions {
  readonly logger: Logger;
  /** At most one line per key per window. Default 60000 ms. */
  readonly windowMs?: number;
}

/**
 * A warning that bites often (a connection cap refusing a flood) logged at
 * most once per key per window: the first occurrence at once, then one line
 * per window with how many more there were, so a flood cannot flood the log
 * and no occurrence goes uncounted.
 *
 * @example
 * const warn = new ThrottledWarning({ logger });
 * warn.note("MAX_CONNECTIONS", "connection refused: MAX_CONNECTIONS reached", { quota: "MAX_CONNECTIONS" });
 */
export class ThrottledWarning {
  private readonly windows = new Map<string, { pending: number; msg: string; fields: Record<string, unknown>; timer: NodeJS.Timeout }>();

  constructor(private readonly options: ThrottledWarningOptions) {}

  /** Records one occurrence under `key`; `fields` of the latest go with the line that counts it. */
  note(key: string, msg: string, fields: Record<string, unknown> = {}): void {
    const open = this.windows.get(key);
    if (open) {
      open.pending++;
      open.msg = msg;
      open.fields = fields;
      return;
    }
    this.options.logger.warn({ ...fields, count: 1 }, msg);
    this.startWindow(key, msg, fields);
  }

  /** Logs what is pending and stops the timers (at shutdown). */
  flush(): void {
    for (const [key, w] of this.windows) {
      clearTimeout(w.timer);
      if (w.pending > 0) this.options.logger.warn({ ...w.fields, count: w.pending }, w.msg);
      this.windows.delete(key);
    }
  }

  private startWindow(key: string, msg: string, fields: Record<string, unknown>): void {
    const timer = setTimeout(() => {
      const w = this.windows.get(key);
      this.windows.delete(key);
      if (!w || w.pending === 0) return;
      this.options.logger.warn({ ...w.fields, count: w.pending }, w.msg);
      this.startWindow(key, w.msg, w.fields);
    }, this.options.windowMs ?? 60_000);
    timer.unref();
    this.windows.set(key, { pending: 0, msg, fields, timer });
  }
}
