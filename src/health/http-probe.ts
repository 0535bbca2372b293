import http from "node:http";
import type { ClientRequest, IncomingMessage } from "node:http";

/** Where to send one health probe: `GET http://{host}:{port}{path}`. */
export interface ProbeTarget {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

/**
 * The outcome of one probe. A pass carries the status and, when the body was
 * JSON and fully read within the cap, the parsed body (handed on to
 * `healthCheckPassed` listeners). A failure carries a reason for humans and logs.
 */
export type ProbeResult =
  | { readonly ok: true; readonly status: number; readonly data?: unknown }
  | { readonly ok: false; readonly reason: string };

/** Limits of an {@link HttpProber}; see SPEC 4.2. */
export interface HttpProberOptions {
  /** Whole-request budget: connect, headers, redirects and body read. */
  timeoutMs: number;
  /** Most body bytes read for JSON data (default 65536); beyond it the body is dropped. */
  maxBodyBytes?: number;
  /** Sent on every probe so services can tell probes from users. */
  userAgent?: string;
  /** Socket cap of the keep-alive agent (default unbounded; the scheduler bounds concurrency). */
  maxSockets?: number;
}

const DEFAULT_MAX_BODY_BYTES = 65_536;
const DEFAULT_USER_AGENT = "service-registry-health/1";
const MAX_REDIRECTS = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Relative redirects are resolved against this placeholder so that "same host"
// never depends on parsing the target's own host (zone ids do not parse).
const SAME_HOST = "same-host.invalid";

/**
 * Probes HTTP health endpoints over one keep-alive agent.
 *
 * One agent per prober means a service probed every few seconds reuses its
 * connection instead of paying a handshake (and a TIME_WAIT socket) per
 * probe. `probe()` never rejects: every problem becomes `{ ok: false, reason }`,
 * so the scheduler has nothing to guard against.
 *
 * @example
 * const prober = new HttpProber({ timeoutMs: 2000 });
 * const r = await prober.probe({ id: "a", host: "::1", port: 8080, path: "/health" });
 * if (!r.ok) console.log(r.reason); // e.g. "HTTP 503"
 * prober.close();
 */
export class HttpProber {
  readonly #agent: http.Agent;
  readonly #timeoutMs: number;
  readonly #maxBodyBytes: number;
  readonly #userAgent: string;
  #closed = false;

  constructor(options: HttpProberOptions) {
    if (!(options.timeoutMs > 0 && Number.isFinite(options.timeoutMs))) {
      throw new RangeError(`timeoutMs must be a positive number, got ${options.timeoutMs}`);
    }
    const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!(Number.isInteger(maxBody) && maxBody >= 0)) {
      throw new RangeError(`maxBodyBytes must be a non-negative integer, got ${maxBody}`);
    }
    this.#timeoutMs = options.timeoutMs;
    this.#maxBodyBytes = maxBody;
    this.#userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
    if (/[\r\n]/.test(this.#userAgent)) throw new RangeError("userAgent must not contain line breaks");
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? Infinity });
  }

  /** Probes `target` once; resolves with the result, never rejects. */
  async probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
    if (this.#closed) return fail("prober closed");
    if (signal?.aborted) return fail("aborted");
    const attempt = new Attempt(this.#timeoutMs, signal);
    try {
      let path = target.path || "/";
      for (let hops = 0; ; hops++) {
        const res = await this.#send(target, path, attempt);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status <= 299) {
          const body = await readCapped(res, this.#maxBodyBytes);
          return { ok: true, status, data: body === undefined ? undefined : parseJson(body) };
        }
        // Drain even failures so the socket goes back to the agent.
        await readCapped(res, this.#maxBodyBytes).catch(() => undefined);
        if (attempt.reason === "aborted") return fail(attempt.reason);
        // The status already decided a failure; a stalled error body does not change it.
        if (!REDIRECT_STATUSES.has(status)) return fail(`HTTP ${status}`);
        if (attempt.reason !== undefined) return fail(attempt.reason);
        if (hops === MAX_REDIRECTS) return fail(`too many redirects (more than ${MAX_REDIRECTS})`);
        const next = redirectPath(res.headers.location, path, target);
        if (typeof next !== "string") return next;
        path = next;
      }
    } catch (err) {
      return fail(attempt.reason ?? describe(err));
    } finally {
      attempt.dispose();
    }
  }

  /** Destroys the agent's sockets; later probes fail with "prober closed". */
  close(): void {
    this.#closed = true;
    this.#agent.destroy();
  }

  async #send(target: ProbeTarget, path: string, attempt: Attempt): Promise<IncomingMessage> {
    const first = this.#request(target, path, attempt);
    try {
      return await first.response;
    } catch (err) {
      // A server may close an idle keep-alive socket just as we reuse it; that
      // says nothing about the service's health, so retry once on a fresh one.
      const stale = first.req.reusedSocket && (err as NodeJS.ErrnoException).code === "ECONNRESET";
      if (!stale || attempt.reason !== undefined) throw err;
      return this.#request(target, path, attempt).response;
    }
  }

  #request(target: ProbeTarget, path: string, attempt: Attempt): { req: ClientRequest; response: Promise<IncomingMessage> } {
    const req = http.request({
      agent: this.#agent,
      // node:http wants IPv6 literals bare and brackets them in the Host header itself.
      hostname: unbracket(target.host),
      port: target.port,
      path,
      method: "GET",
      headers: { "user-agent": this.#userAgent, accept: "application/json, */*;q=0.5" },
    });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.on("error", reject);
    });
    attempt.track(req);
    req.end();
    return { req, response };
  }
}

/** One probe's deadline and caller abort, folded into a single cancel reason. */
class Attempt {
  reason: string | undefined;
  #req: ClientRequest | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.#cancel("aborted");

  constructor(timeoutMs: number, signal: AbortSignal | undefined) {
    this.#timer = setTimeout(() => this.#cancel(`timed out after ${timeoutMs} ms`), timeoutMs);
    this.#timer.unref();
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  track(req: ClientRequest): void {
    this.#req = req;
    if (this.reason !== undefined) req.destroy(new Error(this.reason));
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }

  #cancel(reason: string): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    // Destroying the request also destroys its socket and any response body
    // being read, so a stalled server cannot hold a slot past the deadline.
    this.#req?.destroy(new Error(reason));
  }
}

/**
 * Reads at most `cap` bytes; resolves undefined (and destroys the response,
 * freeing its socket) when the body is larger, so nothing beyond the cap is buffered.
 */
function readCapped(res: IncomingMessage, cap: number): Promise<Buffer | undefined> {
  const declared = Number(res.headers["content-length"]);
  if (Number.isFinite(declared) && declared > cap) {
    res.destroy();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        resolve(undefined);
        res.destroy();
        return;
      }
      chunks.push(chunk);
    });
    res.on("end", () => resolve(Buffer.concat(chunks, size)));
    res.on("error", reject);
    res.on("close", () => {
      if (!res.complete) reject(new Error("connection closed before the body was complete"));
    });
  });
}

function parseJson(body: Buffer): unknown {
  const text = body.toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The path to follow for a redirect, or the failure to report instead. */
function redirectPath(location: string | undefined, current: string, target: ProbeTarget): string | ProbeResult {
  if (!location) return fail("redirect without a location");
  let url: URL;
  try {
    url = new URL(location, `http://${SAME_HOST}${current}`);
  } catch {
    return fail("redirect to an invalid location");
  }
  if (url.protocol !== "http:") return fail(`redirect to ${url.protocol} not followed`);
  const sameHost =
    url.host === SAME_HOST ||
    (url.hostname === normalizeHost(target.host) && (url.port === "" ? 80 : Number(url.port)) === target.port);
  if (!sameHost) return fail("redirect to another host not followed");
  return url.pathname + url.search;
}

function normalizeHost(host: string): string {
  const bare = unbracket(host);
  try {
    return new URL(`http://${bare.includes(":") ? `[${bare}]` : bare}/`).hostname;
  } catch {
    return host.toLowerCase();
  }
}

function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function describe(err: unknown): string {
  // Node 20 tries every address of a name and reports an AggregateError with an empty message.
  if (err instanceof AggregateError && err.errors.length > 0) return describe(err.errors[0]);
  if (err instanceof Error) return err.message || (err as NodeJS.ErrnoException).code || err.name;
  return String(err);
}

function fail(reason: string): ProbeResult {
  return { ok: false, reason };
}
