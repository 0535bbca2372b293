import { connect } from "node:net";
import type { ProbeResult, ProbeTarget } from "./http-probe.js";
import { allowedAddresses, lookupAll, NEXT_ADDRESS_CODES } from "./probe-addresses.js";
import { AbortFanout, assertProbeTimeout, ProbeAttempt } from "./probe-attempt.js";
import { describeProbeError, errorCode } from "./probe-errors.js";
import { PROBE_TARGET_DENIED, ProbeTargetPolicy } from "./probe-target-policy.js";

/** Limits of a {@link TcpProber}. */
export interface TcpProberOptions {
  /** Default connect budget (ms), name resolution included; a target's own `timeoutMs` wins. */
  readonly timeoutMs: number;
  readonly targetPolicy?: ProbeTargetPolicy;
  readonly resolve?: (hostname: string) => Promise<string[]>;
}

/**
 * A TCP check: the target passes when a connection to host:port is
 * established within the timeout, and the socket is closed at once. Same
 * target policy and name handling as the HTTP prober; never rejects.
 */
export class TcpProber {
  readonly #timeoutMs: number;
  readonly #policy: ProbeTargetPolicy;
  readonly #resolve: (hostname: string) => Promise<string[]>;
  readonly #fanout = new AbortFanout();

  constructor(options: TcpProberOptions) {
    assertProbeTimeout(options.timeoutMs);
    this.#timeoutMs = options.timeoutMs;
    this.#policy = options.targetPolicy ?? new ProbeTargetPolicy();
    this.#resolve = options.resolve ?? lookupAll;
  }

  async probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
    if (signal?.aborted) return { ok: false, reason: "aborted" };
    const attempt = new ProbeAttempt(target.timeoutMs || this.#timeoutMs, signal, this.#fanout);
    try {
      const addresses = await allowedAddresses(target.host, this.#policy, this.#resolve, attempt);
      if (addresses.length === 0) return { ok: false, reason: PROBE_TARGET_DENIED };
      for (let i = 0; ; i++) {
        const error = await connectOnce(addresses[i] as string, target.port, attempt);
        if (error === undefined) return { ok: true, status: 0 };
        const last = i === addresses.length - 1;
        if (last || attempt.reason !== undefined || !NEXT_ADDRESS_CODES.has(errorCode(error) ?? "")) {
          return { ok: false, reason: attempt.reason ?? describeProbeError(error) };
        }
      }
    } catch (err) {
      return { ok: false, reason: attempt.reason ?? describeProbeError(err) };
    } finally {
      attempt.dispose();
    }
  }
}

/** Connects to `address`:`port` and closes again; resolves with the error, or undefined once connected. */
function connectOnce(address: string, port: number, attempt: ProbeAttempt): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    attempt.track({ cancel: (reason) => socket.destroy(reason) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once("error", (err) => resolve(err));
    socket.once("close", () => resolve(new Error("connection closed")));
  });
}
