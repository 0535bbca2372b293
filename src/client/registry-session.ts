import { EventEmitter } from "node:events";
import { connectivityState, status, type ClientDuplexStream, type StatusObject } from "@grpc/grpc-js";
import type * as pb from "../../gen/registry/v1/registry.js";
import type { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { authMetadata, type AuthSource } from "./auth.js";
import { RegistryClientError, toClientError } from "./client-error.js";
import type { RegistryConnections } from "./registry-connections.js";

/** Options of `RegistryClient.keepAlive()`. */
export interface KeepAliveOptions {
  /** The instance's own credentials (`{ instanceId, token }`); default the client's. */
  readonly auth?: AuthSource;
  /** Ends the session, as `close()` does. */
  readonly signal?: AbortSignal;
}

/** Events of a `RegistrySession`. */
export interface RegistrySessionEvents {
  /** A message from the registry: the revision when it was sent. The first one means the session is open. */
  revision: [revision: number];
  /**
   * The channel the stream runs on left READY while the session was open:
   * the registry asked the connection to go away (HTTP/2 GOAWAY, e.g. at its
   * maximum connection age) or the connection failed. The stream itself may
   * still be open (a GOAWAY lets it run out a grace period). A holder that
   * must not leave a gap opens a new session, which gets a new connection,
   * and closes this one once the new one is open.
   */
  channelLeftReady: [];
  /** The session ended: `undefined` after `close()`, else why (the registry's status, or the connection's loss). */
  end: [error: RegistryClientError | undefined];
}

type KeepAliveStream = ClientDuplexStream<pb.KeepAliveRequest, pb.KeepAliveResponse>;

/** How long `close()` waits for the registry to acknowledge the half-close before cancelling. */
const CLOSE_ACK_MS = 2000;

/**
 * One KeepAlive stream holding a session for a SESSION-checked instance: the
 * registry counts the instance alive while the stream is open and marks it
 * UNHEALTHY as soon as it ends. The stream is opened on the preferred
 * registry address (failing over like other calls); it is not reopened here:
 * `registerSelf` does that (see its `healthCheck` option). The channel's
 * keepalive pings (see `ConnectionOptions.keepaliveTimeMs`) make a dead
 * registry end the session on this side too.
 *
 * @example
 * const session = client.keepAlive(id, { auth: { instanceId: id, token } });
 * await session.opened; // the registry accepted it; the instance is healthy
 * session.on("end", (err) => err && log.warn({ err }, "session lost"));
 * await session.close(); // the registry records "session closed by the instance"
 */
export class RegistrySession extends EventEmitter<RegistrySessionEvents> {
  /** Resolves with the revision of the registry's first answer; rejects if the session ends before it. */
  readonly opened: Promise<number>;
  /** Resolves when the session is over, with what `end` carries. Never rejects. */
  readonly ended: Promise<RegistryClientError | undefined>;
  private stream: KeepAliveStream | undefined;
  private lastRevision = 0;
  private isOpen = false;
  private over = false;
  private closing = false;
  private endError: RegistryClientError | undefined;
  private where: string | undefined;
  private resolveOpened!: (revision: number) => void;
  private rejectOpened!: (error: RegistryClientError) => void;
  private resolveEnded!: (error: RegistryClientError | undefined) => void;

  /** Use `RegistryClient.keepAlive()`. */
  constructor(
    connections: RegistryConnections,
    readonly instanceId: string,
    private readonly options: KeepAliveOptions,
  ) {
    super();
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpened = resolve;
      this.rejectOpened = reject;
    });
    // Awaiting `opened` is optional: a session that fails to open is also told through `end`.
    this.opened.catch(() => undefined);
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    if (options.signal?.aborted) {
      this.finish(new RegistryClientError(status.CANCELLED, "aborted", "KeepAlive"));
      return;
    }
    options.signal?.addEventListener("abort", this.onAbort, { once: true });
    void this.start(connections);
  }

  private readonly onAbort = (): void => void this.close();

  /** Revision of the registry's latest message (0 before the first). */
  get revision(): number {
    return this.lastRevision;
  }

  /** The registry address the stream went to, once picked. */
  get address(): string | undefined {
    return this.where;
  }

  /** True once the session ended. */
  get isEnded(): boolean {
    return this.over;
  }

  /** Why it ended (undefined while open, or after `close()`). */
  get error(): RegistryClientError | undefined {
    return this.endError;
  }

  /**
   * Ends the session the way the registry reads as "closed by the instance":
   * half-closes the stream and waits (briefly) for the registry's answer,
   * then cancels what is left. Resolves once it is over; idempotent.
   */
  async close(): Promise<void> {
    if (this.over) return;
    this.closing = true;
    const stream = this.stream;
    if (!stream) {
      this.finish(undefined);
      return;
    }
    stream.end();
    const timer = setTimeout(() => {
      this.finish(undefined);
      stream.cancel();
    }, CLOSE_ACK_MS);
    timer.unref();
    await this.ended;
    clearTimeout(timer);
  }

  private async start(connections: RegistryConnections): Promise<void> {
    let endpoint;
    try {
      endpoint = await connections.pick("KeepAlive");
    } catch (err) {
      this.finish(toClientError(err, "KeepAlive"));
      return;
    }
    if (this.over) return;
    if (this.closing) return this.finish(undefined);
    this.where = endpoint.address;
    const channel = endpoint.client.getChannel();
    const stream = endpoint.client.keepAlive(authMetadata(this.options.auth));
    this.stream = stream;
    stream.on("data", (message: pb.KeepAliveResponse) => {
      if (this.over) return;
      const first = !this.isOpen;
      this.isOpen = true;
      this.lastRevision = message.revision;
      if (first) {
        this.resolveOpened(message.revision);
        this.watchChannel(channel);
      }
      this.emit("revision", message.revision);
    });
    stream.on("error", (err) => {
      const error = toClientError(err, "KeepAlive", endpoint.address);
      connections.noteFailure(endpoint.index, error);
      // Cancelled by close() after its wait: a close, not a failure.
      this.finish(this.closing && error.code === status.CANCELLED ? undefined : error);
    });
    stream.on("status", (s: StatusObject) => {
      if (s.code !== status.OK) return; // 'error' reports it
      this.finish(
        this.closing ? undefined : new RegistryClientError(status.UNAVAILABLE, "the registry ended the session", "KeepAlive", endpoint.address),
      );
    });
    stream.write({ instanceId: this.instanceId });
    if (this.closing) stream.end();
  }

  /** Tells `channelLeftReady` once, the first time the channel leaves READY while the session is open. */
  private watchChannel(channel: ReturnType<RegistryServiceClient["getChannel"]>): void {
    let state: connectivityState;
    try {
      state = channel.getConnectivityState(false);
    } catch {
      return; // closed meanwhile
    }
    if (state !== connectivityState.READY) return;
    // No deadline: the watcher holds no timer, and a closed channel calls it (SHUTDOWN) too.
    channel.watchConnectivityState(state, Infinity, () => {
      if (!this.over && !this.closing) this.emit("channelLeftReady");
    });
  }

  private finish(error: RegistryClientError | undefined): void {
    if (this.over) return;
    this.over = true;
    this.endError = error;
    this.options.signal?.removeEventListener("abort", this.onAbort);
    if (!this.isOpen) {
      this.rejectOpened(error ?? new RegistryClientError(status.CANCELLED, "closed before it opened", "KeepAlive", this.where));
    }
    this.resolveEnded(error);
    try {
      this.emit("end", error);
    } catch {
      // A throwing listener must not break the stream's bookkeeping.
    }
  }
}
