import type { HttpProber, HttpProberOptions, ProbeResult, ProbeTarget } from "./http-probe.js";
import { assertProbeTimeout } from "./probe-attempt.js";

/**
 * An {@link HttpProber} loaded when first needed. undici, its HTTP client, is
 * over a hundred modules (a noticeable part of a start: bench scenario 5,
 * start-up), and a registry can answer calls
 * before any probe has run. With `after`, probes wait for that promise
 * before loading it: the server passes one it resolves once it serves, so
 * undici loads after the "serving" line, not before it. Same contract as
 * HttpProber: `probe` resolves, never rejects.
 */
export class LazyHttpProber {
  readonly #options: HttpProberOptions;
  readonly #after: Promise<unknown>;
  readonly #closing: Promise<void>;
  #markClosed: () => void = () => {};
  #prober: Promise<HttpProber | undefined> | undefined;
  /** The loaded prober, once there is one: probes then go straight to it. */
  #ready: HttpProber | undefined;
  #closed = false;

  constructor(options: HttpProberOptions, after: Promise<unknown> = Promise.resolve()) {
    assertProbeTimeout(options.timeoutMs); // as HttpProber would, but now rather than at the first probe
    this.#options = options;
    this.#after = after;
    this.#closing = new Promise((resolve) => (this.#markClosed = resolve));
  }

  /**
   * Probes once the client is loaded. A probe held until then answers
   * "aborted" as soon as `signal` aborts: the scheduler's `stop()` waits for
   * the probes it aborted, and when start-up fails `after` never settles.
   */
  async probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
    if (this.#ready !== undefined && !this.#closed) return this.#ready.probe(target, signal);
    let prober: HttpProber | undefined;
    try {
      const loaded = await unlessAborted(this.#load(), signal);
      if (loaded === ABORTED) return { ok: false, reason: "aborted" };
      prober = loaded;
    } catch (err) {
      return { ok: false, reason: `the probe client did not load: ${(err as Error).message}` };
    }
    if (prober === undefined || this.#closed) return { ok: false, reason: "prober closed" };
    return prober.probe(target, signal);
  }

  /** Closes the prober (loaded or not); waiting and later probes fail with "prober closed". */
  close(): void {
    this.#closed = true;
    this.#markClosed();
    void this.#prober?.then((p) => p?.close(), () => undefined);
  }

  /** The prober, loaded once `after` settles; undefined when closed first. */
  #load(): Promise<HttpProber | undefined> {
    this.#prober ??= Promise.race([this.#after, this.#closing]).then(async () => {
      if (this.#closed) return undefined;
      const { HttpProber } = await import("./http-probe.js");
      const prober = new HttpProber(this.#options);
      if (this.#closed) prober.close(); // closed while it loaded
      else this.#ready = prober;
      return prober;
    });
    return this.#prober;
  }
}

const ABORTED = Symbol("aborted");

/** `promise`'s outcome, or {@link ABORTED} if `signal` aborts first. */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABORTED> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
