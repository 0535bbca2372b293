import type { DestinationStream } from "pino";

/** A pino destination that may also write out what it holds. */
export interface FlushableDestination extends DestinationStream {
  flush?(callback?: (err?: Error) => void): void;
}

/**
 * A pino destination for people: each JSON line pino writes
 * is turned into one human-readable line by pino-pretty's own formatter
 * (`[12:00:00.000] INFO: instance registered {"instanceId":...}`; colours
 * when the terminal takes them) and handed to `inner` in the same call.
 *
 * The formatter runs in-process, not in a transport's worker thread: the line
 * reaches `inner` (stdout's `fdDestination`) at once, so a line is out before
 * the change it reports is acknowledged, as with JSON, and redaction has
 * already happened (pino redacts before it serializes).
 */
export class PrettyDestination implements FlushableDestination {
  constructor(
    private readonly inner: FlushableDestination,
    private readonly format: (line: string) => string,
  ) {}

  write(line: string): void {
    this.inner.write(this.format(line));
  }

  flush(callback?: (err?: Error) => void): void {
    if (this.inner.flush) this.inner.flush(callback);
    else callback?.();
  }
}

/**
 * A `PrettyDestination` over `inner`. pino-pretty (and its dependencies) load
 * only here, so JSON output costs no start-up time for them.
 */
export async function prettyDestination(inner: FlushableDestination): Promise<PrettyDestination> {
  const { prettyFactory } = (await import("pino-pretty")).default;
  // One line per event; `service` is the same on every line.
  const format = prettyFactory({ translateTime: "SYS:HH:MM:ss.l", ignore: "service", singleLine: true });
  return new PrettyDestination(inner, format);
}
