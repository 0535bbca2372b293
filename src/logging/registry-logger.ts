import type { Logger } from "pino";

/**
 * What `ServiceRegistry` accepts as its `logger`, as the seed's README says:
 * `console`, pino, or any object with these four methods.
 */
export interface RegistryLogger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** The calls the registry makes: pino's shape, fields first, then the message. */
export type StructuredLogger = Pick<Logger, "debug" | "info" | "warn" | "error">;

const LEVELS = ["debug", "info", "warn", "error"] as const;

/**
 * The registry logs pino-style, `(fields, message)`. A pino logger is used as
 * it is (the server passes one); any other logger, console included, is
 * called as console is: the message first, then the fields, so a line reads
 * like console output (`instance registered { instanceId: ..., ... }`).
 */
export function structuredLogger(logger: RegistryLogger): StructuredLogger {
  if (isPino(logger)) return logger;
  const adapted = {} as Record<(typeof LEVELS)[number], (fields: unknown, message?: string) => void>;
  for (const level of LEVELS) {
    adapted[level] = (fields, message) => {
      if (typeof fields === "string") logger[level](fields);
      else if (message === undefined) logger[level](fields);
      else logger[level](message, fields);
    };
  }
  return adapted as unknown as StructuredLogger;
}

function isPino(logger: RegistryLogger): logger is Logger {
  const candidate = logger as Partial<Logger>;
  return typeof candidate.levelVal === "number" && typeof candidate.child === "function" && typeof candidate.bindings === "function";
}
