import { connect } from "node:net";
import { sleep } from "../../client/backoff.js";

/** Options of `waitForPort`. */
export interface PortWaitOptions {
  /** Give up (resolve false) after this long. */
  readonly timeoutMs: number;
  /** Give up (resolve false) when this aborts. */
  readonly signal?: AbortSignal;
  /** Pause between rounds of attempts. Default 50 ms. */
  readonly intervalMs?: number;
}

/** Longest wait for one connection attempt (a host that drops SYNs never refuses). */
const ATTEMPT_TIMEOUT_MS = 1000;

/**
 * Resolves true once `port` accepts a TCP connection on one of `hosts`
 * (each tried every round), false at the timeout or when `signal` aborts.
 * The connection is closed at once: only its acceptance counts. For a
 * program that is starting: there is no event to await from outside it.
 *
 * @example await waitForPort(["127.0.0.1", "::1"], 8080, { timeoutMs: 30_000 })
 */
export async function waitForPort(hosts: readonly string[], port: number, options: PortWaitOptions): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 50;
  for (;;) {
    if (options.signal?.aborted) return false;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    const attempts = hosts.map((host) => accepts(host, port, Math.min(left, ATTEMPT_TIMEOUT_MS)));
    if ((await Promise.all(attempts)).some(Boolean)) return true;
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), options.signal);
  }
}

/** Whether `host:port` accepts a connection within `timeoutMs`. */
function accepts(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (accepted: boolean): void => {
      socket.destroy();
      resolve(accepted);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
