import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Agent } from "undici";
import { AbortFanout, assertProbeTimeout, ProbeAttempt } from "./probe-attempt.js";
import { ProbeExchange, type ExchangeOutcome } from "./probe-exchange.js";
import { describeProbeError as describe, errorCode } from "./probe-errors.js";
import { PROBE_TARGET_DENIED, ProbeTargetPolicy } from "./probe-target-policy.js";

/**
 * What to probe: by default `GET http://{host}:{port}{path}`; `kind` says
 * when it is a grpc.health.v1 call or a TCP connect instead (see CheckProber).
 */
export interface ProbeTarget {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly path: string;
  /** Absent means "http". */
  readonly kind?: "http" | "grpc" | "tcp" | undefined;
  /** `grpc`: the service name to ask about ("" for the server as a whole). */
  readonly grpcService?: string | undefined;
  /** `grpc`: over TLS. */
  readonly tls?: boolean | undefined;
  /** This target's own timeout (ms); absent or 0 for the prober's. */
  readonly timeoutMs?: number | undefined;
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
  /** Connection cap per host:port (default unbounded; the scheduler bounds concurrency). */
  maxSockets?: number;
  /** Which addresses may be probed. Default: `new ProbeTargetPolicy()` (denies link-local, unspecified, multicast). */
  targetPolicy?: ProbeTargetPolicy;
  /** Resolves a host name to its addresses, in the order to try them. Default: `dns.lookup` (all addresses). */
  resolve?: (hostname: string) => Promise<string[]>;
}

/** One address to send a probe to, and the Host header naming the target there. */
interface Route {
  readonly origin: string;
  readonly headers: Record<string, string>;
}

const DEFAULT_MAX_BODY_BYTES = 65_536;
const DEFAULT_USER_AGENT = "service-registry-health/1";
const MAX_REDIRECTS = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Relative redirects are resolved against this placeholder so that "same host"
// never depends on parsing the target's own host (zone ids do not parse).
const SAME_HOST = "same-host.invalid";
// Errors that mean "the connection went away under the request" rather than
// "the service refused": undici's own socket error, and the kernel's reset.
const STALE_SOCKET_CODES = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);
// Errors that say this address takes no connection at all: the next address of the name may.
const NEXT_ADDRESS_CODES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "EAFNOSUPPORT"]);

async function lookupAll(hostname: string): Promise<string[]> {
  return (await lookup(hostname, { all: true })).map((a) => a.address);
}

/**
 * Probes HTTP health endpoints over one keep-alive undici agent.
 *
 * One agent per prober means a service probed every few seconds reuses its
 * connection instead of paying a handshake (and a TIME_WAIT socket) per
 * probe. undici rather than node:http because it costs about half the CPU
 * per request, and probing is the registry's steady background load.
 * `probe()` never rejects: every problem becomes `{ ok: false, reason }`,
 * so the scheduler has nothing to guard against.
 *
 * Every probe is checked against a {@link ProbeTargetPolicy}. A host name is
 * resolved by the prober itself at each probe, each address is judged, and
 * the request goes to an allowed address as an IP origin (the name in the
 * Host header): what was checked is what is connected to, so a name that
 * changes its answer between check and connect (DNS rebinding) gains
 * nothing. A name with no allowed address fails with
 * "probe target denied by policy". Failure reasons name what failed
 * (refused, timed out, HTTP status) in fixed words, never response bytes or
 * the addresses a name resolved to: they are streamed to every watcher.
 *
 * @example
 * const prober = new HttpProber({ timeoutMs: 2000 });
 * const r = await prober.probe({ id: "a", host: "::1", port: 8080, path: "/health" });
 * if (!r.ok) console.log(r.reason); // e.g. "HTTP 503"
 * prober.close();
 */
export class HttpProber {
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #maxBodyBytes: number;
  readonly #headers: Record<string, string>;
  readonly #fanout = new AbortFanout();
  readonly #policy: ProbeTargetPolicy;
  readonly #resolve: (hostname: string) => Promise<string[]>;
  #closed = false;

  constructor(options: HttpProberOptions) {
    assertProbeTimeout(options.timeoutMs);
    const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!(Number.isInteger(maxBody) && maxBody >= 0)) {
      throw new RangeError(`maxBodyBytes must be a non-negative integer, got ${maxBody}`);
    }
    this.#timeoutMs = options.timeoutMs;
    this.#maxBodyBytes = maxBody;
    const userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
    if (/[\r\n]/.test(userAgent)) throw new RangeError("userAgent must not contain line breaks");
    this.#headers = { "user-agent": userAgent, accept: "application/json, */*;q=0.5" };
    this.#policy = options.targetPolicy ?? new ProbeTargetPolicy();
    this.#resolve = options.resolve ?? lookupAll;
    this.#agent = new Agent({
      // Our own deadline covers the whole probe; undici's per-phase timers
      // would only add a second, differently worded timeout. The connect
      // timeout still bounds a socket left connecting after a probe gave up.
      headersTimeout: 0,
      bodyTimeout: 0,
      // undici closes an idle socket after 4 s by default, before the next
      // probe of a target at the default 5 s interval; node's agent kept it.
      // A server's Keep-Alive hint still takes precedence (undici closes a
      // little before it), and a socket that dies anyway gets the retry.
      keepAliveTimeout: 60_000,
      connect: { timeout: options.timeoutMs },
      ...(options.maxSockets === undefined ? {} : { connections: options.maxSockets }),
    });
  }

  /** Probes `target` once; resolves with the result, never rejects. */
  async probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
    if (this.#closed) return fail("prober closed");
    if (signal?.aborted) return fail("aborted");
    // undici takes origins as URLs, and WHATWG URLs have no IPv6 zone ids.
    if (target.host.includes("%")) return fail("IPv6 zone ids (fe80::1%eth0) are not supported by the probe client");
    const attempt = new ProbeAttempt(target.timeoutMs || this.#timeoutMs, signal, this.#fanout);
    try {
      const routes = await this.#routes(target, attempt);
      if (routes.length === 0) return fail(PROBE_TARGET_DENIED);
      let path = target.path || "/";
      for (let hops = 0; ; hops++) {
        const out = await this.#sendToFirst(routes, path, attempt);
        if (out.kind === "error") return fail(attempt.reason ?? describe(out.error));
        const status = out.status;
        if (status >= 200 && status <= 299) {
          if (out.bodyError) return fail(attempt.reason ?? describe(out.bodyError));
          return { ok: true, status, data: out.body === undefined ? undefined : parseJson(out.body) };
        }
        if (attempt.reason === "aborted") return fail(attempt.reason);
        // The status already decided a failure; a stalled error body does not change it.
        if (!REDIRECT_STATUSES.has(status)) return fail(`HTTP ${status}`);
        if (attempt.reason !== undefined) return fail(attempt.reason);
        if (hops === MAX_REDIRECTS) return fail(`too many redirects (more than ${MAX_REDIRECTS})`);
        const next = redirectPath(out.headers.location, path, target);
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
    this.#agent.destroy().catch(() => undefined);
  }

  /**
   * The allowed addresses of `target`, as routes in the order to try them;
   * empty when the policy allows none. A name is resolved now, within the
   * probe's deadline, so every probe judges what the name says at that time.
   */
  async #routes(target: ProbeTarget, attempt: ProbeAttempt): Promise<Route[]> {
    const bare = unbracket(target.host);
    if (isIP(bare) !== 0) return this.#policy.allows(bare) ? [{ origin: origin(bare, target.port), headers: this.#headers }] : [];
    let cancel: (reason: Error) => void = () => {};
    const cancelled = new Promise<never>((_resolve, reject) => (cancel = reject));
    attempt.track({ cancel });
    const addresses = await Promise.race([this.#resolve(bare), cancelled]);
    const headers = { ...this.#headers, host: `${bare}:${target.port}` };
    return [...new Set(addresses)].filter((a) => this.#policy.allows(a)).map((a) => ({ origin: origin(a, target.port), headers }));
  }

  /**
   * Sends to the first route that takes a connection; once one answered,
   * later requests of this probe (redirects) go to that one only.
   */
  async #sendToFirst(routes: Route[], path: string, attempt: ProbeAttempt): Promise<ExchangeOutcome> {
    for (let i = 0; ; i++) {
      const route = routes[i] as Route;
      const out = await this.#send(route, path, attempt);
      const last = i === routes.length - 1;
      if (out.kind === "error" && !last && attempt.reason === undefined && NEXT_ADDRESS_CODES.has(errorCode(out.error) ?? "")) continue;
      if (out.kind === "response") routes.splice(0, routes.length, route);
      return out;
    }
  }

  async #send(route: Route, path: string, attempt: ProbeAttempt): Promise<ExchangeOutcome> {
    const first = await this.#exchange(route, path, attempt);
    // A server may close an idle keep-alive socket just as we reuse it; that
    // says nothing about the service's health, so retry once on a fresh one.
    // undici does not retry this itself. It cannot tell us whether the socket
    // was reused, so a reset on a fresh connection is retried too: harmless,
    // the retry fails the same way and reports it.
    if (first.kind !== "error" || !first.beforeResponse || attempt.reason !== undefined) return first;
    if (!STALE_SOCKET_CODES.has(errorCode(first.error) ?? "")) return first;
    return this.#exchange(route, path, attempt);
  }

  #exchange(route: Route, path: string, attempt: ProbeAttempt): Promise<ExchangeOutcome> {
    const exchange = new ProbeExchange(this.#maxBodyBytes);
    attempt.track(exchange);
    // dispatch() reports its own failures (a bad path, a closed agent) to the handler.
    this.#agent.dispatch({ origin: route.origin, path, method: "GET", headers: route.headers }, exchange);
    return exchange.done;
  }
}

/** `http://address:port`, with IPv6 literals bracketed as URLs need them. */
function origin(address: string, port: number): string {
  return `http://${address.includes(":") ? `[${address}]` : address}:${port}`;
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
function redirectPath(location: string | string[] | undefined, current: string, target: ProbeTarget): string | ProbeResult {
  if (Array.isArray(location)) return fail("redirect with several locations");
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

function fail(reason: string): ProbeResult {
  return { ok: false, reason };
}
