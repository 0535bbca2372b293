import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { CallSignals } from "../api/call-signals.js";
import type { RegistryMetrics } from "../observability/registry-metrics.js";
import { RegistryError } from "../registry/registry-error.js";
import { HttpError, toHttpError } from "./http-errors.js";
import type { ConnectionLimits } from "../transport/connection-limits.js";
import { PortListener } from "../transport/port-listener.js";
import { matchRoute, type Route, type RouteResponse } from "./routes.js";
import { settledWithin } from "../util/settled-within.js";
import { ThrottledWarning } from "../logging/throttled-warning.js";

/** TLS for HTTP_PORT: the gRPC server's certificate; with `ca`, client certificates are required. */
export interface HttpTlsOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer | undefined;
}

/** Options of {@link RegistryHttpServer}. */
export interface RegistryHttpServerOptions {
  readonly routes: readonly Route[];
  readonly metrics?: RegistryMetrics;
  readonly logger: Logger;
  /** HTTPS instead of HTTP. */
  readonly tls?: HttpTlsOptions;
  /** A client must send a request's headers within this. Default 10000 ms. */
  readonly headersTimeoutMs?: number;
  /** A client must send a whole request, body included, within this (node:http answers 408). Default 30000 ms. */
  readonly requestTimeoutMs?: number;
  /**
   * A connection on which nothing moves this long, neither in nor out, is
   * closed: a peer that stopped reading (frozen, or hostile) must not pin an
   * answer in memory forever (the default is in docs/operations.md).
   */
  readonly idleTimeoutMs?: number;
  /** Connection caps HTTP_PORT shares with PORT (MAX_CONNECTIONS...): checked at accept. None when omitted. */
  readonly limits?: ConnectionLimits;
}

/**
 * The HTTP side of the registry (node:http, no framework for a handful of
 * routes): dispatches to route handlers, answers JSON errors through the one
 * HTTP error mapping, counts and times every request by route template, and
 * shuts down without cutting requests in flight. It serves HTTP_PORT
 * (`listen`) and the HTTP/1.1 connections of the port it shares with gRPC
 * (`acceptConnection`).
 */
export class RegistryHttpServer {
  /** Never listens itself: every connection is handed to it, plaintext or with TLS already terminated. */
  private readonly server: Server;
  private listener: PortListener | undefined;
  private readonly sockets = new Set<Socket>();
  /** The abort signals of requests in flight; `close` aborts them once it stops waiting. */
  private readonly calls = new CallSignals();
  /** Connections whose request node:http timed out (answered 408 in `clientError`). */
  private readonly timedOut = new WeakSet<Socket>();
  private closing = false;
  /** Each connection's requests not yet answered, whose signals a FIN from the client aborts (see `signalFor`). */
  private readonly pending = new WeakMap<Socket, Set<AbortController>>();
  /** While closing: resolves the wait once the last connection is gone. */
  private drainCheck: (() => void) | undefined;
  /** Each connection's requests dispatched and not yet answered in full (see `admitPipelined`). */
  private readonly unanswered = new WeakMap<Socket, number>();
  private readonly pipelineWarning: ThrottledWarning;

  constructor(private readonly options: RegistryHttpServerOptions) {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      if (!this.admitPipelined(req, res)) return;
      this.dispatch(req, res).catch((err: unknown) => {
        options.logger.error({ err }, "HTTP request handling failed");
        if (!res.headersSent) send(res, { status: 500, json: { error: { code: "INTERNAL", message: "internal error" } } });
        else res.destroy();
      });
    };
    // Bounded waits for slow or idle clients, checked every second rather than
    // node's default of every 30 s, so a client that trickles its headers
    // holds a connection for about headersTimeout, not up to half a minute more.
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    this.server = createServer({ connectionsCheckingInterval: Math.min(1000, headersTimeout), headersTimeout, requestTimeout: Math.max(headersTimeout, options.requestTimeoutMs ?? 30_000) }, handler);
    // node:http destroys a connection idle this long (its socket's inactivity timeout).
    this.server.timeout = options.idleTimeoutMs ?? 30_000;
    // node:http tracks connections (for closeIdleConnections) and enforces the
    // two timeouts above from its 'listening' event on. This server is handed
    // its connections instead of listening, so it is told it listens.
    this.server.emit("listening");
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      // One listener a connection, not one a request: a client may pipeline many.
      const pending = new Set<AbortController>();
      this.pending.set(socket, pending);
      socket.once("end", () => {
        for (const controller of pending) controller.abort(clientEnded());
        pending.clear();
      });
      socket.on("close", () => {
        this.sockets.delete(socket);
        this.drainCheck?.();
      });
    });
    this.pipelineWarning = new ThrottledWarning({ logger: options.logger });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      // A request already dispatched is counted with this status, not as its client going away (499).
      if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") this.timedOut.add(socket);
      const status =
        err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout"
        : err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large"
        : "400 Bad Request";
      // end() alone would leave the connection half-open until the peer closes its side, which a
      // frozen or hostile peer never does: close ours once the answer is out, as node:http does.
      if (socket.writable && err.code !== "ECONNRESET") socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\n\r\n`, () => socket.destroy());
      else socket.destroy();
    });
  }

  /** Binds HTTP_PORT (HTTPS with the `tls` option) and serves; resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    this.listener = new PortListener({
      http: (socket) => this.acceptConnection(socket),
      ...(this.options.tls ? { tls: this.options.tls } : {}),
      ...(this.options.limits ? { limits: this.options.limits } : {}),
    });
    return this.listener.listen(host, port);
  }

  /** Serves an HTTP/1.x connection accepted elsewhere (the port shared with gRPC). */
  acceptConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.server.emit("connection", socket);
  }

  /**
   * Stops accepting, lets requests in flight finish for up to `graceMs`, then
   * aborts the signals of the rest (a write not yet committed is then not
   * made) and cuts them.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    const stopped = this.listener?.close();
    this.server.close();
    this.server.closeIdleConnections();
    // The server never listened, so its 'close' does not wait for connections: wait for them here.
    const drained = new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.sockets.size === 0) resolve();
      };
      check();
      this.drainCheck = check;
    });
    await settledWithin(drained, graceMs);
    this.calls.abortAll();
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    this.listener?.destroyConnections();
    this.pipelineWarning.flush();
    await stopped;
  }

  /**
   * Admits a request unless its connection already has MAX_PIPELINED_REQUESTS
   * waiting for their answers; then the connection is closed, and the requests
   * node:http parsed with this one are not served. node:http stops reading a
   * connection whose answers back up only between the requests it parses, and
   * one read can hold thousands of pipelined requests: each would be answered
   * into memory behind a peer that never reads (a /metrics page apiece), with
   * no credential needed. Clients that pipeline at all send a few at a time.
   */
  private admitPipelined(req: IncomingMessage, res: ServerResponse): boolean {
    const socket = req.socket;
    if (socket.destroyed) return false;
    const unanswered = (this.unanswered.get(socket) ?? 0) + 1;
    if (unanswered > MAX_PIPELINED_REQUESTS) {
      socket.destroy();
      this.pipelineWarning.note(
        "pipelined",
        `closed a connection that pipelined more than ${MAX_PIPELINED_REQUESTS} requests without reading their answers`,
        { peer: socket.remoteAddress },
      );
      return false;
    }
    this.unanswered.set(socket, unanswered);
    res.once("close", () => this.unanswered.set(socket, (this.unanswered.get(socket) ?? 1) - 1));
    return true;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
    // A request target like "//" or "//[" is not a valid URL: answer 400, never throw.
    const url = URL.canParse(req.url ?? "/", "http://registry.invalid")
      ? new URL(req.url ?? "/", "http://registry.invalid")
      : undefined;
    const match = url ? matchRoute(this.options.routes, method, url.pathname) : undefined;
    const template = match?.route.template ?? "unmatched";
    // 'close', not 'finish': an answer that never started (its client went away first) is counted
    // too, as 499. One that started is counted with its status, an event stream its client closed too.
    res.once("close", () => {
      const label = ["GET", "HEAD", "POST", "PUT", "DELETE"].includes(req.method ?? "") ? (req.method as string) : "other";
      const code = res.headersSent ? res.statusCode : this.timedOut.has(req.socket) ? 408 : CLIENT_CLOSED_REQUEST;
      this.options.metrics?.onHttpRequest(template, label, code, (performance.now() - started) / 1000);
    });
    if (this.closing) res.setHeader("connection", "close");
    let answer: RouteResponse;
    try {
      if (!url) throw new HttpError(400, "INVALID_ARGUMENT", "request target is not a valid path");
      if (!match) throw new HttpError(404, "NOT_FOUND", "no such route");
      if (match.kind === "method") {
        throw new HttpError(405, "UNIMPLEMENTED", `method ${method} not allowed here`, { allow: match.allow.join(", ") });
      }
      answer = await match.route.handle({ req, params: match.params, query: (url as URL).searchParams, signal: this.signalFor(req, res) });
    } catch (err) {
      const failure = toHttpError(err, this.options.logger, template);
      answer = { status: failure.status, headers: failure.headers, json: failure.body };
      // Do not read (or wait for) a body we are refusing. A request without one (a GET) is
      // not complete yet either when the route throws at once, but its connection can stay.
      if (!req.complete && hasBody(req)) res.setHeader("connection", "close");
    }
    send(res, answer);
  }

  /**
   * A request's abort signal: aborted when the client closes its side of the
   * connection (FIN) or the connection closes before the answer is out, or
   * by `close`. A FIN is the first a server hears of a client that gave up
   * (a timed-out fetch closes its socket); node:http ends the connection
   * then, so the answer could not reach the client. 'close' alone comes a
   * loop turn or more later, after the write the client gave up on would
   * have been made.
   */
  private signalFor(req: IncomingMessage, res: ServerResponse): AbortSignal {
    const controller = this.calls.begin();
    const pending = this.pending.get(req.socket);
    if (req.socket.readableEnded) controller.abort(clientEnded());
    else pending?.add(controller);
    // 'close' comes after 'finish' too, and always comes: the connection closing ends every response.
    res.once("close", () => {
      pending?.delete(controller);
      this.calls.end(controller);
      if (!res.writableFinished) controller.abort(new RegistryError("cancelled", "the client went away before the answer"));
    });
    return controller.signal;
  }
}

/** Requests one HTTP/1.1 connection may have waiting for their answers (pipelined); one more closes it. */
export const MAX_PIPELINED_REQUESTS = 16;

/** The status counted for a request whose answer never started (nginx's name and number for it). */
const CLIENT_CLOSED_REQUEST = 499;

/** Why a request's signal is aborted when its client closed its side of the connection. */
function clientEnded(): RegistryError {
  return new RegistryError("cancelled", "the client closed its connection before the answer");
}

/** Whether a body follows the request's headers (RFC 9112 §6.3). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

function send(res: ServerResponse, answer: RouteResponse): void {
  if (res.headersSent) return;
  res.setHeader("cache-control", "no-store");
  for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
  if (answer.stream !== undefined) {
    res.writeHead(answer.status, { "content-type": answer.contentType ?? "text/event-stream; charset=utf-8" });
    answer.stream(res);
    return;
  }
  if (answer.body !== undefined) {
    res.writeHead(answer.status, { "content-type": answer.contentType ?? "application/octet-stream" });
    res.end(answer.body);
    return;
  }
  if (answer.text !== undefined) {
    res.writeHead(answer.status, { "content-type": answer.contentType ?? "text/plain; charset=utf-8" });
    res.end(answer.text);
    return;
  }
  res.writeHead(answer.status, { "content-type": "application/json; charset=utf-8" });
  res.end(`${JSON.stringify(answer.json ?? null)}\n`);
}
