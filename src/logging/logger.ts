import pino, { type Logger } from "pino";

/**
 * Paths pino blanks out wherever they appear, as a second line of defence:
 * the code never logs a key or token on purpose.
 */
export const REDACTED_PATHS = [
  "token",
  "key",
  "authorization",
  "*.token",
  "*.key",
  "*.authorization",
  "*.tokenHash",
  '*["x-service-token"]',
  "*.serviceToken",
  "*.registrationKey",
];

/** The server's JSON logger. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options = { level, base: { service: "service-registry" }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
  return destination ? pino(options, destination) : pino(options);
}
