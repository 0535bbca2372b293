import { RegistryError } from "../registry/registry-error.js";

/**
 * The abort signals of one front end's calls in flight (`CallContext.signal`),
 * so that stopping the front end aborts them all at once.
 *
 * Each call gets its own controller, which its transport aborts when the call
 * ends early (client gone, deadline passed) and releases with `end` once the
 * call is answered; a transport whose calls carry their own state (gRPC's)
 * makes none and reads `stopping` instead. Not `AbortSignal.any([call, shutdown])`: on Node 20 every
 * signal combined with a long-lived one stays referenced from it until that
 * one aborts (nodejs/node#55351), so a server-lifetime shutdown signal would
 * keep one signal per call ever made.
 *
 * @example
 * const controller = signals.begin();
 * try { await api.register({ credentials, signal: controller.signal }, request); }
 * finally { signals.end(controller); }
 * // at shutdown, once in-flight calls are no longer waited for:
 * signals.abortAll();
 */
export class CallSignals {
  private readonly live = new Set<AbortController>();
  private stopped: RegistryError | undefined;

  /** True once `abortAll` has run: a transport that makes no signal per call reads this instead. */
  get stopping(): boolean {
    return this.stopped !== undefined;
  }

  /** A controller for a call starting now; already aborted once `abortAll` has run. */
  begin(): AbortController {
    const controller = new AbortController();
    if (this.stopped) controller.abort(this.stopped);
    else this.live.add(controller);
    return controller;
  }

  /** Forgets an answered call: aborting it now would tell nobody anything. */
  end(controller: AbortController): void {
    this.live.delete(controller);
  }

  /** Aborts every call in flight, and every call begun from now on. */
  abortAll(reason = new RegistryError("cancelled", "the server is shutting down")): void {
    this.stopped ??= reason;
    for (const controller of this.live) controller.abort(this.stopped);
    this.live.clear();
  }
}
