import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { RegistryMetrics } from "../observability/registry-metrics.js";
import { HttpError, toHttpError } from "./http-errors.js";
import { matchRoute, type Route, type RouteResponse } from "./routes.js";

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
}

/**
 * The HTTP side of the registry on HTTP_PORT (node:http, no framework for a
 * handful of routes): dispatches to route handlers, answers JSON errors
 * through the one HTTP error mapping, counts and times every request by
 * route template, and shuts down without cutting requests in flight.
 */
export class RegistryHttpServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private closing = false;

  constructor(private readonly options: RegistryHttpServerOptions) {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.dispatch(req, res).catch((err: unknown) => {
        options.logger.error({ err }, "HTTP request handling failed");
        if (!res.headersSent) send(res, { status: 500, json: { error: { code: "INTERNAL", message: "internal error" } } });
        else res.destroy();
      });
    };
    const tls = options.tls;
    this.server = tls
      ? createTlsServer({ cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, handler)
      : createServer(handler);
    // Bounded waits for slow or idle clients.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      if (socket.writable && err.code !== "ECONNRESET") socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
      else socket.destroy();
    });
  }

  /** Binds and serves; resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then cuts the rest. */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([closed, timedOut]);
    clearTimeout(timer);
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await closed;
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
    res.on("finish", () => {
      const label = ["GET", "HEAD", "POST", "DELETE"].includes(req.method ?? "") ? (req.method as string) : "other";
      this.options.metrics?.onHttpRequest(template, label, res.statusCode, (performance.now() - started) / 1000);
    });
    if (this.closing) res.setHeader("connection", "close");
    let answer: RouteResponse;
    try {
      if (!url) throw new HttpError(400, "INVALID_ARGUMENT", "request target is not a valid path");
      if (!match) throw new HttpError(404, "NOT_FOUND", "no such route");
      if (match.kind === "method") {
        throw new HttpError(405, "UNIMPLEMENTED", `method ${method} not allowed here`, { allow: match.allow.join(", ") });
      }
      answer = await match.route.handle({ req, params: match.params, query: (url as URL).searchParams });
    } catch (err) {
      const failure = toHttpError(err, this.options.logger, template);
      answer = { status: failure.status, headers: failure.headers, json: failure.body };
      // Do not read (or wait for) a body we are refusing.
      if (!req.complete) res.setHeader("connection", "close");
    }
    send(res, answer);
  }
}

function send(res: ServerResponse, answer: RouteResponse): void {
  if (res.headersSent) return;
  for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
  res.setHeader("cache-control", "no-store");
  if (answer.text !== undefined) {
    res.writeHead(answer.status, { "content-type": answer.contentType ?? "text/plain; charset=utf-8" });
    res.end(answer.text);
    return;
  }
  res.writeHead(answer.status, { "content-type": "application/json; charset=utf-8" });
  res.end(`${JSON.stringify(answer.json ?? null)}\n`);
}
