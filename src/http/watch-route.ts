import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { RegistryApi } from "../api/registry-api.js";
import { RegistryError } from "../registry/registry-error.js";
import type { WatchEvent } from "../registry/types.js";
import { HttpError, toHttpError } from "./http-errors.js";
import { instanceJson, type InstanceJson } from "./json-mapping.js";
import { callContext, header, selectorFromQuery } from "./request-context.js";
import type { Route } from "./routes.js";

/** What `GET /watch` needs. */
export interface WatchRouteOptions {
  readonly logger: Logger;
  /** A stream that accepts nothing this long is ended (WATCH_STALL_TIMEOUT_MS). */
  readonly stallTimeoutMs: number;
  /** A comment line this often keeps proxies and the server's idle timeout from closing a quiet stream. Default 15 s. */
  readonly keepaliveMs?: number;
  /** Streams open at once (MAX_WATCH_STREAMS, counted apart from gRPC's); more are refused 429. Unlimited when omitted. */
  readonly maxStreams?: number;
  /** Told of every stream refused by the quota (for metrics). */
  readonly onQuotaRefused?: (quota: string) => void;
}

/** One event as the browser reads it (the `data:` line): the watch stream's fields, camelCase, as the JSON API spells them. */
interface EventJson {
  readonly type: string;
  readonly revision: number;
  readonly epoch: string;
  readonly instance?: InstanceJson;
  readonly removalReason?: string;
  readonly failureReason?: string;
  readonly snapshot?: boolean;
  readonly panic?: boolean;
}

const REMOVAL_REASONS = { unregistered: "UNREGISTERED", health_check_expired: "HEALTH_CHECK_EXPIRED", replaced: "REPLACED", drain_expired: "DRAIN_EXPIRED" } as const;

/**
 * `GET /watch?serviceType=&selector=&sinceRevision=&epoch=`: the watch
 * stream over HTTP as server-sent events, for browsers (the console reads it
 * with fetch, so the Authorization header goes along) and curl. Same
 * semantics as WatchInstances: a snapshot, `synced`, then every change;
 * resume with the last event id (`sinceRevision`, or the `Last-Event-ID`
 * header) and the epoch. An event's id is its revision; snapshot events
 * carry none, since a snapshot is a resume point only once `synced` came.
 * The stream stops taking events while the socket is full and ends, with
 * an `error` event naming where to resume, when it accepts nothing for the
 * stall timeout, the watcher fails, or the server shuts down.
 */
export function watchRoute(api: RegistryApi, options: WatchRouteOptions): Route {
  let open = 0;
  return {
    method: "GET",
    template: "/watch",
    async handle({ req, query, signal }) {
      if (options.maxStreams !== undefined && open >= options.maxStreams) {
        options.onQuotaRefused?.("MAX_WATCH_STREAMS");
        throw new RegistryError("resource_exhausted", `MAX_WATCH_STREAMS reached (${open} open over HTTP)`);
      }
      const lastEventId = header(req, "last-event-id");
      const since = query.get("sinceRevision") ?? lastEventId ?? "0";
      if (!/^\d{1,15}$/.test(since)) throw new HttpError(400, "INVALID_ARGUMENT", "sinceRevision: must be a revision (a non-negative integer)");
      const { watcher } = await api.watch(callContext(req, signal), {
        serviceType: query.get("serviceType") ?? "",
        sinceRevision: Number(since),
        epoch: query.get("epoch") ?? "",
        everyHealthCheck: false,
        selector: selectorFromQuery(query),
      });
      if (signal.aborted) {
        watcher.end();
        throw new RegistryError("cancelled", "the client went away");
      }
      const epoch = (): string => api.registry.epoch;
      return {
        status: 200,
        contentType: "text/event-stream; charset=utf-8",
        headers: { "x-accel-buffering": "no" },
        stream: (res: ServerResponse) => {
          open++;
          let resumeFrom = Number(since);
          let blocked = false;
          let over = false;
          /** The watcher may wake its consumer from inside poll(): one pump at a time. */
          let pumping = false;
          let stall: NodeJS.Timeout | undefined;
          const finish = (error?: unknown): void => {
            if (over) return;
            over = true;
            open--;
            clearTimeout(stall);
            clearInterval(keepalive);
            watcher.end();
            if (error !== undefined && !res.destroyed) {
              const { body } = toHttpError(error, options.logger, "/watch");
              res.write(`event: error\ndata: ${JSON.stringify({ ...body.error, resumeRevision: resumeFrom })}\n\n`);
            }
            res.end();
          };
          const pump = (): void => {
            if (over || blocked || pumping) return;
            pumping = true;
            try {
              pumpEvents();
            } finally {
              pumping = false;
            }
          };
          const pumpEvents = (): void => {
            for (let event = watcher.poll(); event !== undefined; event = watcher.poll()) {
              const line = sseLine(event, epoch());
              if (event.type === "change" || event.type === "synced" || event.type === "bookmark") resumeFrom = event.type === "change" ? event.change.revision : event.revision;
              if (event.type === "reset") resumeFrom = 0;
              if (line !== undefined && !res.write(line)) {
                blocked = true;
                stall = setTimeout(
                  () => finish(new RegistryError("resource_exhausted", `watch stream accepted nothing for ${options.stallTimeoutMs} ms; resume with sinceRevision=${resumeFrom}`)),
                  options.stallTimeoutMs,
                );
                res.once("drain", () => {
                  clearTimeout(stall);
                  blocked = false;
                  pump();
                });
                return;
              }
            }
            if (watcher.closed) finish(watcher.endError ?? new RegistryError("unavailable", "the watch ended"));
          };
          const keepalive = setInterval(() => {
            if (!blocked) res.write(": keepalive\n\n");
          }, options.keepaliveMs ?? 15_000);
          keepalive.unref();
          // The client went away (its connection closed), or the server stops waiting at shutdown.
          res.once("close", () => finish());
          signal.addEventListener("abort", () => finish(new RegistryError("unavailable", "registry is shutting down; reconnect and resume")), { once: true });
          res.write(": watching\n\n");
          watcher.consume(pump);
          pump();
        },
      };
    },
  };
}

/** One event as an SSE record; undefined for events the stream does not carry (probe results: not asked for). */
function sseLine(event: WatchEvent, epoch: string): string | undefined {
  let json: EventJson;
  let id: number | undefined;
  switch (event.type) {
    case "change": {
      const { change } = event;
      id = change.revision;
      const base = { revision: change.revision, epoch, instance: instanceJson(change.instance), ...(event.panic ? { panic: true } : {}) };
      if (change.kind === "removed") json = { type: "removed", ...base, removalReason: REMOVAL_REASONS[change.reason] };
      else if (change.kind === "health") {
        json = change.instance.health === "healthy" ? { type: "health_passed", ...base } : { type: "health_failed", ...base, failureReason: change.failureReason ?? "" };
      } else json = { type: change.kind, ...base };
      break;
    }
    case "snapshot":
      json = { type: "registered", revision: event.revision, epoch, instance: instanceJson(event.instance), snapshot: true, ...(event.panic ? { panic: true } : {}) };
      break;
    case "synced":
    case "bookmark":
      id = event.revision;
      json = { type: event.type, revision: event.revision, epoch, ...(event.type === "bookmark" && event.panic ? { panic: true } : {}) };
      break;
    case "reset":
      json = { type: "reset", revision: event.revision, epoch };
      break;
    default:
      return undefined;
  }
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${json.type}\ndata: ${JSON.stringify(json)}\n\n`;
}
