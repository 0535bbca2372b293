import { Metadata, type ServerWritableStream } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { WatchInstancesRequest } from "../../gen/registry/v1/registry.js";
import { peerHost } from "../api/peer-address.js";
import type { RegistryApi } from "../api/registry-api.js";
import { RegistryError } from "../registry/registry-error.js";
import type { WatchEvent } from "../registry/types.js";
import type { Watcher } from "../registry/watcher.js";
import { credentialsFromMetadata } from "./auth.js";
import { toServiceError } from "./status-mapping.js";
import type { WatchEventEncoder } from "./watch-encoder.js";

/** What the WatchInstances handler needs. */
export interface WatchHandlerDeps {
  readonly api: RegistryApi;
  readonly encoder: WatchEventEncoder;
  readonly logger: Logger;
  /** A stream that accepts nothing for this long is ended with RESOURCE_EXHAUSTED. */
  readonly stallTimeoutMs: number;
  /** Told of every event written, by a bounded type name (for metrics). */
  readonly onEventSent?: (type: string) => void;
}

/** Trailer naming the revision a client should resume from after a stall. */
export const RESUME_REVISION_TRAILER = "x-resume-revision";

/**
 * Serves WatchInstances: translates the core's watcher into a gRPC server
 * stream. It writes pre-encoded bytes, waits for 'drain' whenever grpc-js
 * says its buffer is full (so a slow client holds only a bounded buffer while
 * its watcher parks and later catches up from history), and ends the stream
 * with a status when the watcher fails or the server shuts down.
 */
export class WatchStreams {
  private readonly open = new Set<(error: RegistryError) => void>();
  /** Streams opened with instance credentials, by instance id: they end when it is removed. */
  private readonly byInstance = new Map<string, Set<(error: RegistryError) => void>>();

  constructor(private readonly deps: WatchHandlerDeps) {
    deps.api.registry.on("instanceRemoved", (instance) => {
      const ends = this.byInstance.get(instance.id);
      if (!ends) return;
      this.byInstance.delete(instance.id);
      const error = new RegistryError("unauthenticated", "the instance whose credentials opened this stream was removed");
      for (const end of ends) end(error);
    });
  }

  /** The grpc-js handler. */
  readonly handle = (call: ServerWritableStream<WatchInstancesRequest, Buffer>): void => {
    void this.serve(call);
  };

  /** Number of streams being served. */
  get size(): number {
    return this.open.size;
  }

  /** Ends every stream with `error` (UNAVAILABLE at shutdown). */
  endAll(error: RegistryError): void {
    for (const end of [...this.open]) end(error);
  }

  private async serve(call: ServerWritableStream<WatchInstancesRequest, Buffer>): Promise<void> {
    const { api, encoder, stallTimeoutMs } = this.deps;
    let watcher: Watcher | undefined;
    let lastSentRevision = call.request.sinceRevision;
    let stopped: RegistryError | undefined;
    let wakeDrain: (() => void) | undefined;
    const end = (error: RegistryError): void => {
      stopped ??= error;
      watcher?.end(error);
      wakeDrain?.();
    };
    this.open.add(end);
    let ownerId: string | undefined;
    try {
      const { serviceType, sinceRevision, epoch, everyHealthCheck } = call.request;
      const opened = api.watch(
        { credentials: credentialsFromMetadata(call.metadata), peerHost: peerHost(call.getPeer()) },
        { serviceType, sinceRevision, epoch, everyHealthCheck },
      );
      watcher = opened.watcher;
      if (opened.principal.kind === "instance") {
        ownerId = opened.principal.instance.id;
        let ends = this.byInstance.get(ownerId);
        if (!ends) this.byInstance.set(ownerId, (ends = new Set()));
        ends.add(end);
      }
      const active = watcher;
      call.on("cancelled", () => {
        active.end();
        wakeDrain?.(); // grpc-js never emits 'drain' on a cancelled call
      });
      for await (const event of active) {
        if (call.cancelled) break;
        const writable = call.write(encoder.encode(event));
        this.deps.onEventSent?.(event.type === "change" ? event.change.kind : event.type);
        lastSentRevision = resumePoint(event, lastSentRevision);
        if (!writable) {
          const drained = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), stallTimeoutMs);
            const done = (): void => {
              clearTimeout(timer);
              call.off("drain", done);
              wakeDrain = undefined;
              resolve(true);
            };
            call.on("drain", done);
            wakeDrain = done;
          });
          if (stopped) throw stopped;
          if (!drained) {
            throw new RegistryError(
              "resource_exhausted",
              `watch stream accepted nothing for ${stallTimeoutMs} ms; resume with since_revision=${lastSentRevision}`,
            );
          }
        }
      }
      if (stopped) throw stopped;
      if (!call.cancelled) call.end();
    } catch (err) {
      if (!call.cancelled) {
        const status = toServiceError(err, this.deps.logger, "WatchInstances");
        if (err instanceof RegistryError && (err.code === "resource_exhausted" || err.code === "unavailable")) {
          const trailer = new Metadata();
          trailer.set(RESUME_REVISION_TRAILER, String(lastSentRevision));
          status.metadata = trailer;
        }
        call.emit("error", status);
      }
    } finally {
      watcher?.end();
      this.open.delete(end);
      if (ownerId !== undefined) {
        const ends = this.byInstance.get(ownerId);
        ends?.delete(end);
        if (ends?.size === 0) this.byInstance.delete(ownerId);
      }
    }
  }
}

/** The since_revision a client holding everything sent so far should resume from. */
function resumePoint(event: WatchEvent, previous: number): number {
  switch (event.type) {
    case "change":
      return event.change.revision;
    case "reset":
      return 0; // the old resume point is void; a fresh snapshot is needed
    case "snapshot":
    case "probe":
      return previous; // a snapshot is a resume point only once SYNCED arrives
    default:
      return event.revision;
  }
}
