import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";

/** What one HTTP request/response of a probe came to. */
export type ExchangeOutcome =
  | {
      readonly kind: "response";
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      /** The whole body, or undefined when it was over the cap (and the connection was dropped). */
      readonly body: Buffer | undefined;
      /** Set when the body broke off after the status arrived; the status still stands. */
      readonly bodyError?: Error;
    }
  | {
      readonly kind: "error";
      readonly error: Error;
      /** No response byte came back, so a retry cannot repeat a seen response. */
      readonly beforeResponse: boolean;
    };

const EMPTY = Buffer.alloc(0);

/**
 * One GET as an undici dispatch handler, settling a promise with its outcome.
 *
 * A handler instead of `request()` because a probe needs no stream: the body
 * is collected into at most `cap` bytes and the connection is dropped as soon
 * as it goes over, so nothing beyond the cap is buffered, and there is no
 * `Readable`, `AsyncResource` or abort listener per probe (together a sizeable
 * share of a loopback probe's CPU). `cancel()` settles at once even if undici
 * has not started the request yet (still connecting), so a dead host cannot
 * hold the caller past its deadline; undici aborts it when it would start.
 */
export class ProbeExchange implements Dispatcher.DispatchHandler {
  readonly done: Promise<ExchangeOutcome>;
  #settle!: (outcome: ExchangeOutcome) => void;
  #settled = false;
  #controller: Dispatcher.DispatchController | undefined;
  #cancelReason: Error | undefined;
  readonly #cap: number;
  #status = 0;
  #headers: IncomingHttpHeaders = {};
  #chunks: Buffer[] | undefined;
  #size = 0;
  #overCap = false;

  constructor(cap: number) {
    this.#cap = cap;
    this.done = new Promise((resolve) => (this.#settle = resolve));
  }

  /**
   * Settles now with `reason` and aborts the request (now or as soon as undici
   * starts it). Once a status has arrived it still stands: a 503 whose body
   * stalls is reported as "HTTP 503", not as the timeout.
   */
  cancel(reason: Error): void {
    if (this.#cancelReason) return;
    this.#cancelReason = reason;
    if (this.#status === 0) this.#finish({ kind: "error", error: reason, beforeResponse: true });
    else this.#finish({ kind: "response", status: this.#status, headers: this.#headers, body: undefined, bodyError: reason });
    // Aborting destroys the socket, so a stalled server does not keep it either.
    this.#controller?.abort(reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#cancelReason) controller.abort(this.#cancelReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    // 1xx responses are interim; the final status follows on the same request.
    if (status < 200) return;
    this.#status = status;
    this.#headers = headers;
    const declared = Number(headers["content-length"]);
    if (Number.isFinite(declared) && declared > this.#cap) this.#dropBody(controller);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#overCap) return;
    this.#size += chunk.length;
    if (this.#size > this.#cap) {
      this.#dropBody(controller);
      return;
    }
    (this.#chunks ??= []).push(chunk);
  }

  onResponseEnd(): void {
    const chunks = this.#chunks;
    const body = chunks === undefined ? EMPTY : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.#size);
    this.#finish({ kind: "response", status: this.#status, headers: this.#headers, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#status === 0) this.#finish({ kind: "error", error, beforeResponse: true });
    else this.#finish({ kind: "response", status: this.#status, headers: this.#headers, body: undefined, bodyError: error });
  }

  /** Over the cap: the status stands without data, and the rest of the body is not read. */
  #dropBody(controller: Dispatcher.DispatchController): void {
    this.#overCap = true;
    this.#chunks = undefined;
    this.#finish({ kind: "response", status: this.#status, headers: this.#headers, body: undefined });
    controller.abort(new Error("body over the probe's cap"));
  }

  #finish(outcome: ExchangeOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#settle(outcome);
  }
}
