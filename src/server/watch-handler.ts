import { constants as http2Constants } from "node:http2";
import { Metadata, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { WatchInstancesRequest } from "../../gen/registry/v1/registry.js";
import { peerHost } from "../api/peer-address.js";
import type { RegistryApi } from "../api/registry-api.js";
import { RegistryError } from "../registry/registry-error.js";
import { StreamRoster } from "../api/stream-roster.js";
import { WatchPump, type WatchSink } from "../api/watch-pump.js";
import { credentialsFromMetadata } from "./auth.js";
import { http2StreamOf } from "./call-stream.js";
import { safeServiceError, toServiceError } from "./status-mapping.js";
import type { WatchEventEncoder } from "./watch-encoder.js";
import type { WatchEvent } from "../registry/types.js";
import { WrittenEventsTally } from "./written-events-tally.js";

/** What the WatchInstances handler needs. */
export interface WatchHandlerDeps {
  readonly api: RegistryApi;
  readonly encoder: WatchEventEncoder;
  readonly logger: Logger;
  /** A stream that accepts nothing for this long is ended with RESOURCE_EXHAUSTED. */
  readonly stallTimeoutMs: number;
  /**
   * Told how many events were written, by a bounded type name (for
   * metrics): once per run of writes of one type, so a publish's fan-out is
   * one call however many streams it reaches (see WrittenEventsTally).
   */
  readonly onEventsSent?: (type: string, count: number) => void;
  /**
   * A stream ended while its client was not reading gets this long for the
   * status to get out (a client that reads again gets the status and its
   * resume point); then it is reset on the wire, which frees its buffers.
   * The default is in docs/operations.md (Connections and streams).
   */
  readonly resetGraceMs?: number;
  /** Watch streams open at once, all connections together (MAX_WATCH_STREAMS). Default unlimited. */
  readonly maxStreams?: number;
  /** Watch streams open at once on one connection (MAX_WATCH_STREAMS_PER_CONNECTION). Default unlimited. */
  readonly maxStreamsPerConnection?: number;
  /** Watch streams open at once under one instance's credentials (MAX_WATCH_STREAMS_PER_INSTANCE). Default unlimited. */
  readonly maxStreamsPerInstance?: number;
  /** Told of every stream refused by a quota, by the quota's setting name (for metrics). */
  readonly onQuotaRefused?: (quota: string) => void;
}

/** Trailer naming the revision a client should resume from after a stall. */
export const RESUME_REVISION_TRAILER = "x-resume-revision";

/**
 * Serves WatchInstances: translates the core's watcher into a gRPC server
 * stream through a `WatchPump` (which writes as grpc-js's buffer allows),
 * with each event's bytes encoded once for every stream. A stream is ended
 * with a status when the watcher fails, the client stalls, its key or
 * instance goes, or the server shuts down.
 */
export class WatchStreams {
  private readonly roster: StreamRoster;
  private warnedNoStream = false;
  private readonly written: WrittenEventsTally | undefined;

  constructor(private readonly deps: WatchHandlerDeps) {
    this.written = deps.onEventsSent ? new WrittenEventsTally(deps.onEventsSent) : undefined;
    this.roster = new StreamRoster(deps.api.auth.keys, deps.api.registry, {
      total: { setting: "MAX_WATCH_STREAMS", max: deps.maxStreams },
      perConnection: { setting: "MAX_WATCH_STREAMS_PER_CONNECTION", max: deps.maxStreamsPerConnection },
      perInstance: { setting: "MAX_WATCH_STREAMS_PER_INSTANCE", max: deps.maxStreamsPerInstance },
      onRefused: deps.onQuotaRefused,
    });
  }

  /** The grpc-js handler. */
  readonly handle = (call: ServerWritableStream<WatchInstancesRequest, Buffer>): void => {
    this.serve(call);
  };

  /** Number of streams being served. */
  get size(): number {
    return this.roster.size;
  }

  /** Ends every stream with `error` (UNAVAILABLE at shutdown). */
  endAll(error: RegistryError): void {
    this.roster.endAll(error);
  }

  private serve(call: ServerWritableStream<WatchInstancesRequest, Buffer>): void {
    const { api, encoder, stallTimeoutMs } = this.deps;
    let pump: WatchPump | undefined;
    let finished = false;

    /** Ends the stream once: OK when `err` is undefined, else its status (never on a cancelled call). */
    const finish = (err?: unknown): void => {
      if (finished) return;
      finished = true;
      // Waiting for 'drain': the status would queue behind data the client does not take.
      const blocked = pump?.blocked ?? false;
      pump?.stop();
      this.roster.leave(finish);
      if (call.cancelled) return;
      // This may run inside the registry's publish: nothing thrown here may leave it.
      try {
        if (err === undefined) call.end();
        else call.emit("error", this.statusOf(err, pump?.resumeRevision ?? call.request.sinceRevision));
      } catch {
        // The call is gone either way; the publisher and the other streams go on.
      }
      if (blocked) this.resetLater(call);
    };

    const refusal = this.roster.admit(finish, call.getPeer());
    if (refusal !== undefined) {
      // Before any credential is read: a refused stream costs the server nothing more.
      call.emit("error", toServiceError(refusal, this.deps.logger, "WatchInstances"));
      return;
    }
    // grpc-js never emits 'drain' on a cancelled call: cancellation ends the stream here.
    call.on("cancelled", () => finish());
    const { serviceType, sinceRevision, epoch, everyHealthCheck, selector } = call.request;
    // Inside the promise, so a malformed credential (which throws while read) ends this stream only.
    Promise.resolve()
      .then(() =>
        api.watch(
          { credentials: credentialsFromMetadata(call.metadata), peerHost: peerHost(call.getPeer()) },
          { serviceType, sinceRevision, epoch, everyHealthCheck, selector },
        ),
      )
      .then(
        (opened) => {
          // Ended (cancelled, shutdown) while it waited to reach the resume point.
          if (finished) return opened.watcher.end();
          const sink = new CallSink(call, encoder, this.written, finish);
          pump = new WatchPump(opened.watcher, sink, { stallTimeoutMs, resumeParameter: "since_revision" }, sinceRevision);
          const revoked = this.roster.attach(finish, opened.principal);
          if (revoked) return finish(revoked);
          pump.start();
        },
        (err: unknown) => finish(err),
      );
  }

  /**
   * Resets the call's HTTP/2 stream (RST_STREAM ENHANCE_YOUR_CALM, which
   * grpc-js clients report as RESOURCE_EXHAUSTED) unless it closes within the
   * grace period. Without it a client that never reads again keeps the
   * stream, grpc-js's write buffer and node:http2's queue alive for as long as
   * its connection lives.
   */
  private resetLater(call: ServerWritableStream<WatchInstancesRequest, Buffer>): void {
    const stream = http2StreamOf(call);
    if (stream === undefined) {
      if (!this.warnedNoStream) this.deps.logger.warn("cannot reach the HTTP/2 stream of a grpc-js call: stalled watch streams are not reset");
      this.warnedNoStream = true;
      return;
    }
    if (stream.closed || stream.destroyed) return;
    const timer = setTimeout(() => {
      if (!stream.closed && !stream.destroyed) stream.close(http2Constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }, this.deps.resetGraceMs ?? 2000);
    timer.unref();
    stream.once("close", () => clearTimeout(timer));
  }

  /** The status a failed stream ends with; a resumable one names the revision to resume from. */
  private statusOf(err: unknown, lastSentRevision: number): Partial<ServiceError> {
    const status = safeServiceError(err, this.deps.logger, "WatchInstances");
    if (err instanceof RegistryError && (err.code === "resource_exhausted" || err.code === "unavailable")) {
      const trailer = new Metadata();
      trailer.set(RESUME_REVISION_TRAILER, String(lastSentRevision));
      status.metadata = trailer;
    }
    return status;
  }
}

/**
 * A WatchInstances call as a WatchPump writes to it. A class, not an object
 * literal per call: every sink then shares one hidden class, and the pump's
 * reads of `write` and `gone` stay monomorphic (a literal with a getter gets
 * a hidden class of its own, and the fan-out measured the lookups).
 */
class CallSink implements WatchSink {
  constructor(
    private readonly call: ServerWritableStream<WatchInstancesRequest, Buffer>,
    private readonly encoder: WatchEventEncoder,
    private readonly written: WrittenEventsTally | undefined,
    readonly end: (error?: unknown) => void,
  ) {}

  write(event: WatchEvent): boolean {
    const writable = this.call.write(this.encoder.encode(event));
    this.written?.add(event.type === "change" ? event.change.kind : event.type);
    return writable;
  }

  whenDrained(resume: () => void): void {
    this.call.once("drain", resume);
  }

  get gone(): boolean {
    return this.call.cancelled;
  }
}
