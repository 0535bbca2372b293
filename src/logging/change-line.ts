import pino, { type Logger } from "pino";

/** What a change line names: an instance (never its token or token hash) and the change. */
export interface ChangeLineFields {
  readonly instanceId: string;
  readonly serviceType: string;
  readonly host: string;
  readonly port: number;
  readonly revision: number;
  /** Health changes: the new health. */
  readonly health?: string | undefined;
  /** Removals: why; health changes: the failed probe's reason, if any. */
  readonly reason?: string | undefined;
}

/** pino's internals used here: documented as `pino.symbols`, absent from its types. */
interface PinoInternals {
  [key: symbol]: unknown;
}
const { chindingsSym, timeSym, streamSym, needsMetadataGsym } = pino.symbols as unknown as Record<
  "chindingsSym" | "timeSym" | "streamSym" | "needsMetadataGsym",
  symbol
>;
const INFO = 30;

/**
 * Loggers `createLogger` made: pino with its default formatters, no mixin,
 * hooks, message prefix or nested key, and a redaction list that names none
 * of `ChangeLineFields`. Their change lines are formatted here, as pino would.
 */
const plainLoggers = new WeakSet<Logger>();

/** Marks a logger as plain (see `plainLoggers`); only `createLogger` calls it. */
export function markPlainLogger(logger: Logger): void {
  plainLoggers.add(logger);
}

/**
 * Logs one change (registration, removal, health transition) at `info`: the
 * line `logger.info(fields, msg)` writes, byte for byte, to the same
 * destination.
 *
 * For a plain logger it is built here: pino's generic path (serializers,
 * redaction, formatters, a dozen functions per line) was a large share of a
 * Register's own code in bench scenario 1, its code cold in the caches every
 * call; this one is a template and three `JSON.stringify`s.
 * Any other logger (a library user's, a child) goes through pino itself.
 * Differences from pino: a lone surrogate is escaped (`\ud800`, as
 * `JSON.stringify` does; pino writes it raw), and pino's `pino_asJson`
 * tracing channel sees no event for these lines.
 */
export function logChange(logger: Pick<Logger, "info">, msg: string, f: ChangeLineFields): void {
  if (!plainLoggers.has(logger as Logger)) {
    logger.info(f, msg);
    return;
  }
  const internals = logger as unknown as PinoInternals;
  const stream = internals[streamSym] as pino.DestinationStream & Record<symbol, unknown>;
  // A multistream reads pino's per-line metadata: pino writes its lines.
  if (stream[needsMetadataGsym] === true) {
    logger.info(f, msg);
    return;
  }
  if ((logger as Logger).levelVal > INFO) return;
  let line =
    `{"level":${INFO}${(internals[timeSym] as () => string)()}${internals[chindingsSym] as string}` +
    `,"instanceId":${JSON.stringify(f.instanceId)},"serviceType":${JSON.stringify(f.serviceType)}` +
    `,"host":${JSON.stringify(f.host)},"port":${finite(f.port)},"revision":${finite(f.revision)}`;
  if (f.health !== undefined) line += `,"health":${JSON.stringify(f.health)}`;
  if (f.reason !== undefined) line += `,"reason":${JSON.stringify(f.reason)}`;
  stream.write(`${line},"msg":${JSON.stringify(msg)}}\n`);
}

/** A number as pino writes it: `null` when not finite, so the line stays JSON. */
function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}
