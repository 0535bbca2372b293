import { status, type ClientReadableStream } from "@grpc/grpc-js";
import * as pb from "../../gen/registry/v1/registry.js";
import { authMetadata, type AuthSource } from "./auth.js";
import { Backoff, sleep, type BackoffOptions } from "./backoff.js";
import { isPermanent, RegistryClientError, toClientError } from "./client-error.js";
import { fromProtoInstance, fromProtoRemovalReason } from "./proto-conversion.js";
import type { RegistryConnections } from "./registry-connections.js";
import type { RegistryWatchEvent } from "./watch-events.js";

/** Options of `RegistryClient.watch()`. */
export interface RegistryWatchOptions {
  /** Only this service type; all types when empty or omitted. */
  readonly serviceType?: string;
  /** Also deliver every probe result as `probe` events, not only health transitions. */
  readonly everyHealthCheck?: boolean;
  /**
   * Only instances whose metadata has each of these keys with exactly that
   * value (e.g. `{ zone: "eu-1" }`): the registry filters at the source, so
   * other instances' snapshot entries, changes and probes never arrive.
   * Resume points still cover every change. Empty or omitted: every instance.
   */
  readonly selector?: Readonly<Record<string, string>>;
  /**
   * Resume point from an earlier watch (its `revision` and `epoch`): the first
   * events are the changes after it. Default: start with a snapshot.
   */
  readonly sinceRevision?: number;
  readonly epoch?: string;
  /** Credentials; default the client's. */
  readonly auth?: AuthSource;
  /** Reconnect schedule; default the client's, else 250 ms doubling to 5 s, half jittered. */
  readonly backoff?: BackoffOptions;
  /**
   * Move to another address when the stream delivers nothing for this long:
   * a registry that hangs, or one whose path is cut, sends nothing. The
   * registry sends a BOOKMARK on idle streams (every BOOKMARK_INTERVAL_MS);
   * set this to twice that. Default: the client's `watchIdleTimeoutMs`
   * (docs/client.md); 0 disables. (The connection's
   * keepalive notices a hung registry sooner; this also covers a registry
   * that answers PINGs but whose watch stream stopped.)
   */
  readonly idleTimeoutMs?: number;
  /**
   * Events buffered for a slow consumer before the stream is paused (the
   * registry then holds back, and after its stall timeout ends the stream; the
   * watch resumes once the consumer catches up). Default 256.
   */
  readonly bufferSize?: number;
  /** Ends the watch. */
  readonly signal?: AbortSignal;
  /** Told about every disconnect before the reconnect delay: for logs and metrics. */
  readonly onDisconnect?: (info: WatchDisconnect) => void;
}

/** A lost watch stream, as reported to `onDisconnect`. */
export interface WatchDisconnect {
  readonly error: RegistryClientError;
  /** Consecutive failed attempts (1 after a stream that had delivered events). */
  readonly attempt: number;
  /** Wait before the next attempt. */
  readonly delayMs: number;
  /** Revision the next attempt resumes after (0: a fresh snapshot). */
  readonly revision: number;
}

/** Two of the registry's default BOOKMARK intervals (30 s). */
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

const HEALTH_TYPES = new Set([pb.EventType.EVENT_TYPE_HEALTH_CHECK_PASSED, pb.EventType.EVENT_TYPE_HEALTH_CHECK_FAILED]);

/**
 * A watch on the registry as an async iterator of `RegistryWatchEvent`s that
 * survives disconnects (SPEC 4.3, 4.6).
 *
 * The first event is a `snapshot` (the complete current set, delivered as one
 * event once the registry has sent all of it), then each change in revision
 * order. After any disconnect — the registry shutting down (UNAVAILABLE), a
 * stall end (RESOURCE_EXHAUSTED), a network failure — it reconnects with
 * jittered exponential backoff, failing over to the next registry address
 * when one is unavailable or silent, and resumes after the last revision and epoch it
 * delivered, so no change is missed or repeated. When the registry cannot
 * honour that point (its data set changed, or the point left its history) the
 * watch yields `reset` and then a fresh `snapshot` that replaces everything
 * known before. A snapshot is never delivered in part.
 *
 * It ends when the consumer breaks out of the loop, `close()` is called or
 * the signal aborts; it throws only on errors retrying cannot fix (wrong
 * credentials, invalid service type).
 *
 * @example
 * for await (const event of client.watch({ serviceType: "billing" })) {
 *   if (event.type === "snapshot") replaceAll(event.instances);
 *   else if (event.type === "instanceRemoved") remove(event.instance.id);
 * }
 */
export class RegistryWatch implements AsyncIterableIterator<RegistryWatchEvent> {
  private revisionSeen: number;
  private epochSeen: string;
  private snapshotBuffer: pb.Instance[] | undefined;
  /** Types whose snapshot messages said panic. */
  private readonly snapshotPanic = new Set<string>();
  private readonly ready: RegistryWatchEvent[] = [];
  private readonly abort = new AbortController();
  private readonly bufferSize: number;
  private stream: ClientReadableStream<pb.WatchInstancesResponse> | undefined;
  private paused = false;
  private started = false;
  private closed = false;
  private failure: RegistryClientError | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Ends the current stream for being idle too long. */
  private onIdle: (() => void) | undefined;

  constructor(
    private readonly connections: RegistryConnections,
    private readonly options: RegistryWatchOptions,
    private readonly onClose: () => void = () => {},
  ) {
    this.revisionSeen = options.sinceRevision ?? 0;
    this.epochSeen = options.epoch ?? "";
    this.bufferSize = Math.max(1, options.bufferSize ?? 256);
    if (options.signal?.aborted) this.closed = true;
    else options.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  private readonly onAbort = (): void => this.close();

  /** Revision after which the watch resumes: everything up to it has been delivered. */
  get revision(): number {
    return this.revisionSeen;
  }

  /** Epoch of `revision` (the registry's data set). */
  get epoch(): string {
    return this.epochSeen;
  }

  async next(): Promise<IteratorResult<RegistryWatchEvent>> {
    this.start();
    for (;;) {
      const event = this.ready.shift();
      if (event) {
        if (this.ready.length <= this.bufferSize / 2) this.unpause();
        return { done: false, value: event };
      }
      if (this.failure) {
        const failure = this.failure;
        this.failure = undefined;
        this.close();
        throw failure;
      }
      if (this.closed) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
  }

  async return(): Promise<IteratorResult<RegistryWatchEvent>> {
    this.close();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the watch: the stream is cancelled and the iterator finishes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // A long-lived application signal must not keep every ended watch alive.
    this.options.signal?.removeEventListener("abort", this.onAbort);
    this.ready.length = 0;
    this.onClose();
    this.abort.abort();
    this.stream?.cancel();
    this.wake();
  }

  private start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    void this.run();
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.options.backoff);
    while (!this.closed) {
      await this.roomInBuffer();
      if (this.closed) return;
      let error: RegistryClientError;
      let progressed = false;
      try {
        const endpoint = await this.connections.pick("WatchInstances");
        if (this.closed) return;
        ({ error, progressed } = await this.streamOnce(endpoint.client, endpoint.address));
        this.connections.noteFailure(endpoint.index, error);
      } catch (err) {
        error = toClientError(err, "WatchInstances");
      }
      if (this.closed) return;
      if (isPermanent(error) || this.connections.isClosed) {
        this.failure = error;
        this.wake();
        return;
      }
      if (progressed) backoff.reset();
      const delayMs = backoff.next();
      try {
        this.options.onDisconnect?.({ error, attempt: backoff.attempt, delayMs, revision: this.revisionSeen });
      } catch {
        // A throwing observer must not end the watch.
      }
      await sleep(delayMs, this.abort.signal);
    }
  }

  /** One stream, from open to end; resolves with why it ended and whether it delivered anything. */
  private streamOnce(
    client: pb.RegistryServiceClient,
    address: string,
  ): Promise<{ error: RegistryClientError; progressed: boolean }> {
    return new Promise((resolve) => {
      const request: pb.WatchInstancesRequest = {
        serviceType: this.options.serviceType ?? "",
        sinceRevision: this.revisionSeen,
        epoch: this.epochSeen,
        everyHealthCheck: this.options.everyHealthCheck ?? false,
        selector: { ...this.options.selector },
      };
      const stream = client.watchInstances(request, authMetadata(this.options.auth));
      this.stream = stream;
      let settled = false;
      let progressed = false;
      const finish = (error: RegistryClientError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(this.idleTimer);
        this.onIdle = undefined;
        this.stream = undefined;
        this.paused = false;
        // A snapshot cut short is dropped; the next stream starts it again.
        this.snapshotBuffer = undefined;
        this.snapshotPanic.clear();
        stream.cancel();
        resolve({ error, progressed });
      };
      stream.on("data", (message: pb.WatchInstancesResponse) => {
        if (settled) return;
        progressed = true;
        this.handle(message);
        if (this.ready.length >= this.bufferSize) this.pause();
        else this.armIdleTimer();
      });
      // Status first, data the stream still buffers is dropped: it is replayed after the resume point.
      stream.on("error", (err) => finish(toClientError(err, "WatchInstances", address)));
      stream.on("end", () =>
        finish(new RegistryClientError(status.UNAVAILABLE, "the registry ended the watch stream", "WatchInstances", address)),
      );
      const idleMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
      this.onIdle = () =>
        finish(new RegistryClientError(status.DEADLINE_EXCEEDED, `no message for ${idleMs} ms`, "WatchInstances", address));
      this.armIdleTimer();
    });
  }

  /** Applies one message to the resume point and queues what the consumer should see. */
  private handle(m: pb.WatchInstancesResponse): void {
    const at = { revision: m.revision, epoch: m.epoch };
    switch (m.type) {
      case pb.EventType.EVENT_TYPE_RESET:
        // The old resume point is void: until the new snapshot completes, a reconnect starts from scratch.
        this.revisionSeen = 0;
        this.epochSeen = "";
        this.snapshotBuffer = [];
        this.snapshotPanic.clear();
        this.emit({ type: "reset", ...at });
        return;
      case pb.EventType.EVENT_TYPE_SYNCED: {
        const instances = (this.snapshotBuffer ?? []).map(fromProtoInstance);
        const panicTypes = [...this.snapshotPanic];
        this.snapshotBuffer = undefined;
        this.snapshotPanic.clear();
        this.revisionSeen = m.revision;
        this.epochSeen = m.epoch;
        this.emit({ type: "snapshot", instances, panicTypes, ...at });
        return;
      }
      case pb.EventType.EVENT_TYPE_BOOKMARK:
        if (m.revision >= this.revisionSeen) {
          this.revisionSeen = m.revision;
          this.epochSeen = m.epoch;
        }
        this.emit({ type: "bookmark", ...at, panic: m.panic });
        return;
    }
    if (!m.instance) return;
    if (m.snapshot) {
      (this.snapshotBuffer ??= []).push(m.instance);
      if (m.panic) this.snapshotPanic.add(m.instance.serviceType);
      return;
    }
    // A committed change is newer than everything delivered; a health change
    // is also the instance's own latest revision. Anything else is a per-probe
    // result (every_health_check) or a repeat, which is dropped.
    const isHealth = HEALTH_TYPES.has(m.type);
    const isChange = m.revision > this.revisionSeen && (!isHealth || m.instance.revision === m.revision);
    const instance = fromProtoInstance(m.instance);
    if (!isChange) {
      if (isHealth && this.options.everyHealthCheck) {
        const passed = m.type === pb.EventType.EVENT_TYPE_HEALTH_CHECK_PASSED;
        this.emit({ type: "probe", instance, passed, ...(passed ? {} : { failureReason: m.failureReason }), ...at });
      }
      return;
    }
    this.revisionSeen = m.revision;
    this.epochSeen = m.epoch;
    const change = { ...at, panic: m.panic };
    switch (m.type) {
      case pb.EventType.EVENT_TYPE_INSTANCE_REGISTERED:
        this.emit({ type: "instanceRegistered", instance, ...change });
        return;
      case pb.EventType.EVENT_TYPE_INSTANCE_REMOVED:
        this.emit({ type: "instanceRemoved", instance, reason: fromProtoRemovalReason(m.removalReason), ...change });
        return;
      case pb.EventType.EVENT_TYPE_INSTANCE_DRAINING:
        this.emit({ type: "instanceDraining", instance, ...change });
        return;
      case pb.EventType.EVENT_TYPE_HEALTH_CHECK_PASSED:
        this.emit({ type: "healthCheckPassed", instance, ...change });
        return;
      case pb.EventType.EVENT_TYPE_HEALTH_CHECK_FAILED:
        this.emit({ type: "healthCheckFailed", instance, failureReason: m.failureReason, ...change });
        return;
    }
  }

  private emit(event: RegistryWatchEvent): void {
    if (this.closed) return;
    this.ready.push(event);
    this.wakeConsumer?.();
    this.wakeConsumer = undefined;
  }

  private wake(): void {
    this.wakeConsumer?.();
    this.wakeConsumer = undefined;
    this.wakeProducer?.();
    this.wakeProducer = undefined;
  }

  private pause(): void {
    if (this.paused || !this.stream) return;
    this.paused = true;
    clearTimeout(this.idleTimer); // silence is our own doing now
    this.stream.pause();
  }

  private unpause(): void {
    this.wakeProducer?.();
    this.wakeProducer = undefined;
    if (!this.paused || !this.stream) return;
    this.paused = false;
    this.stream.resume();
    this.armIdleTimer();
  }

  /** Waits until the consumer has room for more, before opening a stream. */
  private async roomInBuffer(): Promise<void> {
    while (!this.closed && this.ready.length > this.bufferSize / 2) {
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
    }
  }

  private armIdleTimer(): void {
    const idleMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    clearTimeout(this.idleTimer);
    const onIdle = this.onIdle;
    if (idleMs <= 0 || !onIdle) return;
    this.idleTimer = setTimeout(onIdle, idleMs);
  }
}
