import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { RegistryApi } from "../api/registry-api.js";
import { RegistryError } from "../registry/registry-error.js";
import { StreamRoster } from "../api/stream-roster.js";
import { WatchPump } from "../api/watch-pump.js";
import { HttpError, toHttpError } from "./http-errors.js";
import { callContext, header, selectorFromQuery } from "./request-context.js";
import type { Route } from "./routes.js";
import { SseEventEncoder } from "./sse-event-encoder.js";

/** What `GET /watch` needs. */
export interface WatchRouteOptions {
  readonly logger: Logger;
  /** A stream that accepts nothing this long is ended (WATCH_STALL_TIMEOUT_MS). */
  readonly stallTimeoutMs: number;
  /** A comment line this often keeps proxies and the server's idle timeout from closing a quiet stream. Default 15 s. */
  readonly keepaliveMs?: number;
  /** Streams open at once (MAX_WATCH_STREAMS, counted apart from gRPC's); more are refused 429. Unlimited when omitted. */
  readonly maxStreams?: number;
  /** Streams open at once under one instance's credentials (MAX_WATCH_STREAMS_PER_INSTANCE, counted apart from gRPC's); more are refused 429. Unlimited when omitted. */
  readonly maxStreamsPerInstance?: number;
  /** Told of every stream refused by a quota (for metrics). */
  readonly onQuotaRefused?: (quota: string) => void;
}

/**
 * `GET /watch?serviceType=&selector=&sinceRevision=&epoch=`: the watch
 * stream over HTTP as server-sent events, for browsers (the console reads it
 * with fetch, so the Authorization header goes along) and curl. Same
 * semantics as WatchInstances: a snapshot, `synced`, then every change;
 * resume with the last event id (the `Last-Event-ID` header, which an
 * EventSource sends on its own, or `sinceRevision`) and the epoch. An
 * event's id is its revision; snapshot events carry none, since a snapshot
 * is a resume point only once `synced` came. The stream stops taking events
 * while the socket is full and ends, with an `error` event naming where to
 * resume, when it accepts nothing for the stall timeout, the watcher fails,
 * the key that opened it is removed or the instance whose credentials did
 * is, or the server shuts down (`endAll`, at the start of shutdown).
 */
export class HttpWatchStreams {
  private readonly roster: StreamRoster;
  private readonly encoder: SseEventEncoder;

  constructor(
    private readonly api: RegistryApi,
    private readonly options: WatchRouteOptions,
  ) {
    this.encoder = new SseEventEncoder(() => api.registry.epoch);
    this.roster = new StreamRoster(api.auth.keys, api.registry, {
      total: { setting: "MAX_WATCH_STREAMS", max: options.maxStreams },
      perInstance: { setting: "MAX_WATCH_STREAMS_PER_INSTANCE", max: options.maxStreamsPerInstance },
      scope: "over HTTP",
      onRefused: options.onQuotaRefused,
    });
  }

  /** Ends every stream with `error` (UNAVAILABLE at shutdown). */
  endAll(error: RegistryError): void {
    this.roster.endAll(error);
  }

  readonly route: Route = {
    method: "GET",
    template: "/watch",
    handle: async ({ req, query, signal }) => {
      const { api, options, roster, encoder } = this;
      /** Set once the stream is served; until then the stream has nothing to end (shutdown fails its opening). */
      let finish: ((error?: unknown) => void) | undefined;
      const end = (error: RegistryError): void => finish?.(error);
      // Counted from here, while it waits for its resume point too.
      const refusal = roster.admit(end, "");
      if (refusal) throw refusal;
      // The header first: an EventSource reconnects to the URL it was given, the header naming the last id it got.
      const lastEventId = header(req, "last-event-id");
      const since = lastEventId ?? query.get("sinceRevision") ?? "0";
      let opened: Awaited<ReturnType<RegistryApi["watch"]>>;
      try {
        if (!/^\d{1,15}$/.test(since)) {
          const field = lastEventId === undefined ? "sinceRevision" : "Last-Event-ID";
          throw new HttpError(400, "INVALID_ARGUMENT", `${field}: must be a revision (a non-negative integer)`);
        }
        opened = await api.watch(callContext(req, signal), {
          serviceType: query.get("serviceType") ?? "",
          sinceRevision: Number(since),
          epoch: query.get("epoch") ?? "",
          everyHealthCheck: false,
          selector: selectorFromQuery(query),
        });
      } catch (err) {
        roster.leave(end);
        throw err;
      }
      const { watcher, principal } = opened;
      // Refused while a status can still say so (429); attaching checks again, for streams opening side by side.
      const overQuota = roster.instanceQuotaRefusal(principal);
      if (overQuota) {
        roster.leave(end);
        watcher.end();
        throw overQuota;
      }
      if (signal.aborted || req.method === "HEAD") {
        roster.leave(end);
        watcher.end();
        if (signal.aborted) throw new RegistryError("cancelled", "the client went away");
        return { status: 200, contentType: "text/event-stream; charset=utf-8", text: "" };
      }
      return {
        status: 200,
        contentType: "text/event-stream; charset=utf-8",
        headers: { "x-accel-buffering": "no" },
        stream: (res: ServerResponse) => {
          let over = false;
          const stop = (error?: unknown): void => {
            if (over) return;
            over = true;
            roster.leave(end);
            clearInterval(keepalive);
            pump.stop();
            if (error !== undefined && !res.destroyed) {
              const { body } = toHttpError(error, options.logger, "/watch");
              res.write(`event: error\ndata: ${JSON.stringify({ ...body.error, resumeRevision: pump.resumeRevision })}\n\n`);
            }
            res.end();
          };
          finish = stop;
          const pump = new WatchPump(
            watcher,
            {
              write: (event) => {
                const bytes = encoder.encode(event);
                return bytes === undefined || res.write(bytes);
              },
              whenDrained: (resume) => res.once("drain", resume),
              // The client going away closes the response: 'close' below.
              gone: false,
              // An SSE client cannot tell a clean end from a dropped connection: a watcher that ends says why.
              end: (error) => stop(error ?? new RegistryError("unavailable", "the watch ended")),
            },
            { stallTimeoutMs: options.stallTimeoutMs, resumeParameter: "sinceRevision" },
            Number(since),
          );
          const keepalive = setInterval(() => {
            if (!pump.blocked) res.write(": keepalive\n\n");
          }, options.keepaliveMs ?? 15_000);
          keepalive.unref();
          // The client went away (its connection closed), or the server stopped waiting for requests.
          res.once("close", () => stop());
          // Aborted by shutdown, or by the client closing its side (node:http ends the connection then: nothing more to say).
          const aborted = (): void => stop(req.socket.readableEnded ? undefined : new RegistryError("unavailable", "registry is shutting down; reconnect and resume"));
          signal.addEventListener("abort", aborted, { once: true });
          // Listed under its key or instance from here: a removal made while it opened is answered now, a later one ends it then.
          const revoked = roster.attach(end, principal);
          if (revoked) return stop(revoked);
          res.write(": watching\n\n");
          pump.start();
        },
      };
    },
  };
}
