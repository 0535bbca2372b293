import {
  connectivityState,
  credentials as grpcCredentials,
  status,
  type ChannelCredentials,
  type ChannelOptions,
} from "@grpc/grpc-js";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { Backoff, sleep } from "./backoff.js";
import { isUnavailable, neverSent, RegistryClientError, toClientError } from "./client-error.js";

/** Where the registry is and how to reach it. */
export interface ConnectionOptions {
  /**
   * Registry addresses (`host:port`, or any grpc-js target). With several
   * (replicas sharing one etcd store), calls go to one and fail over to the
   * next when it is unreachable or answers UNAVAILABLE.
   */
  readonly addresses: readonly string[];
  /** TLS or mTLS credentials (`credentials.createSsl(...)`). Plaintext when omitted. */
  readonly credentials?: ChannelCredentials;
  /** grpc-js channel options, merged over the SDK's defaults. */
  readonly channelOptions?: ChannelOptions;
  /**
   * With several addresses: how long one address may take to connect before
   * the next is tried. Default 2000 ms.
   */
  readonly connectTimeoutMs?: number;
  /**
   * Fail a call at once when no registry can be reached, instead of retrying
   * until its deadline (which rides out a registry restart). Default false.
   */
  readonly failFast?: boolean;
  /**
   * Interval of the HTTP/2 PINGs the SDK sends on every open connection, busy
   * or idle. A hung or cut-off registry (a frozen process, a blackholed path:
   * no RST ever comes) answers none, and its connection is dropped after
   * `keepaliveTimeoutMs`: its calls and watch streams fail UNAVAILABLE and move
   * to another address. 0 disables (defaults: docs/client.md). The registry (a
   * grpc-js server) accepts pings at any rate; a proxy in between may not.
   */
  readonly keepaliveTimeMs?: number;
  /** How long a PING may go unanswered before the connection is dropped. */
  readonly keepaliveTimeoutMs?: number;
  /**
   * With several addresses: how long a read (GetByType, GetInstance,
   * ListServices) waits on one address before it is tried on the next, which
   * becomes preferred. The last address tried gets the rest of the call's
   * deadline.
   */
  readonly attemptTimeoutMs?: number;
}

/**
 * How a call may be repeated on another address: a `read` also after its
 * attempt timed out; an `idempotent` write after UNAVAILABLE; a write
 * `once` only when it provably never left.
 */
export type CallKind = "read" | "idempotent" | "once";

/**
 * The SDK's channel options: reconnect quickly after a registry restart
 * (grpc-js would otherwise back off up to two minutes between connection
 * attempts), keepalive PINGs even without calls, so a hung registry is
 * noticed on an idle connection before a call waits on it, and no cap on an
 * answer's size: a service type may hold 20,000 instances by default, and
 * its GetByType answer is one message, past gRPC's default 4 MiB once they
 * carry a little metadata.
 */
function defaultChannelOptions(options: ConnectionOptions): ChannelOptions {
  return {
    "grpc.max_receive_message_length": -1,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2000,
    "grpc.keepalive_time_ms": options.keepaliveTimeMs ?? 1000,
    "grpc.keepalive_timeout_ms": options.keepaliveTimeoutMs ?? 1000,
    "grpc.keepalive_permit_without_calls": 1,
  };
}

/** The address, not the request, is at fault: unreachable, dropped (a missed keepalive), or silent. */
function addressFault(error: RegistryClientError): boolean {
  return isUnavailable(error) || error.code === status.DEADLINE_EXCEEDED;
}

/** One registry address and its client. */
export interface RegistryEndpoint {
  readonly index: number;
  readonly address: string;
  readonly client: RegistryServiceClient;
}

/**
 * The channels to the registry's addresses, created lazily, with the address
 * currently preferred. Shared by every `RegistryClient` derived from one
 * another (reference counted), so a process holds one connection per
 * registry address.
 */
export class RegistryConnections {
  readonly addresses: readonly string[];
  private readonly clients: (RegistryServiceClient | undefined)[];
  private readonly connectTimeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private preferred = 0;
  private refs = 1;

  constructor(private readonly options: ConnectionOptions) {
    if (options.addresses.length === 0) throw new Error("RegistryClient needs at least one registry address");
    this.addresses = [...options.addresses];
    this.clients = this.addresses.map(() => undefined);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 1000;
  }

  /** True once the last holder released the connections. */
  get isClosed(): boolean {
    return this.refs <= 0;
  }

  /** One more holder; each must `release()`. */
  retain(): this {
    this.refs++;
    return this;
  }

  /** Drops a holder; the last one closes the channels. */
  release(): void {
    if (--this.refs > 0) return;
    for (const client of this.clients) client?.close();
    this.clients.fill(undefined);
  }

  /** The endpoint at `index` (creating its channel on first use). */
  endpoint(index: number): RegistryEndpoint {
    let client = this.clients[index];
    if (!client) {
      if (this.refs <= 0) throw new RegistryClientError(status.CANCELLED, "the client is closed", "connect");
      client = new RegistryServiceClient(
        this.addresses[index] as string,
        this.options.credentials ?? grpcCredentials.createInsecure(),
        { ...defaultChannelOptions(this.options), ...this.options.channelOptions },
      );
      this.clients[index] = client;
    }
    return { index, address: this.addresses[index] as string, client };
  }

  /**
   * Moves the preference away from `index`, to the next address: a call or
   * watch on it failed UNAVAILABLE (unreachable, or its connection dropped
   * after a missed keepalive) or DEADLINE_EXCEEDED (it did not answer).
   */
  markFailed(index: number): void {
    if (this.preferred === index) this.preferred = (index + 1) % this.addresses.length;
  }

  /** Marks the endpoint failed when `error` is the address's fault (see `markFailed`). */
  noteFailure(index: number, error: RegistryClientError): void {
    if (addressFault(error)) this.markFailed(index);
  }

  /**
   * An endpoint to use now: the preferred address if it connects, else the
   * next that does. With a single address it is returned as is (a call on it
   * fails fast with UNAVAILABLE when it is down). Throws UNAVAILABLE naming
   * every address when none connects before `deadline`.
   */
  async pick(method: string, deadline: number = Date.now() + this.connectTimeoutMs): Promise<RegistryEndpoint> {
    const n = this.addresses.length;
    if (n === 1) return this.endpoint(0);
    const start = this.preferred;
    const failures: string[] = [];
    for (let k = 0; k < n; k++) {
      const endpoint = this.endpoint((start + k) % n);
      try {
        await whenReady(endpoint.client, Math.min(deadline, Date.now() + this.connectTimeoutMs));
        this.preferred = endpoint.index;
        return endpoint;
      } catch (err) {
        failures.push(`${endpoint.address}: ${(err as Error).message}`);
      }
    }
    throw new RegistryClientError(status.UNAVAILABLE, `no registry address reachable (${failures.join("; ")})`, method);
  }

  /**
   * Runs one call with failover: on the preferred address, then the next ones
   * while the address cannot be reached, or (unless `once`) answers
   * UNAVAILABLE, or (a `read`) does not answer within `attemptTimeoutMs`. An
   * address that failed UNAVAILABLE or DEADLINE_EXCEEDED stops being
   * preferred, so the next call does not wait on it. A `once` call that
   * reached a registry is never repeated: it might have been applied. Unless
   * `failFast`, a call that found no registry is retried with a short
   * backoff until its deadline, so a registry restart costs latency, not an
   * error. `attempt` gets the deadline of its own attempt.
   */
  async run<T>(
    method: string,
    deadline: number,
    kind: CallKind,
    attempt: (endpoint: RegistryEndpoint, attemptDeadline: number) => Promise<T>,
  ): Promise<T> {
    const backoff = new Backoff({ initialMs: 50, maxMs: 1000 });
    for (;;) {
      let error: RegistryClientError;
      try {
        return await this.runOnce(method, deadline, kind, attempt);
      } catch (err) {
        error = toClientError(err, method);
      }
      const retryable = neverSent(error) || (kind !== "once" && isUnavailable(error));
      const delay = backoff.next();
      if (this.options.failFast || !retryable || this.refs <= 0 || Date.now() + delay >= deadline) throw error;
      await sleep(delay);
    }
  }

  private async runOnce<T>(
    method: string,
    deadline: number,
    kind: CallKind,
    attempt: (endpoint: RegistryEndpoint, attemptDeadline: number) => Promise<T>,
  ): Promise<T> {
    const n = this.addresses.length;
    let lastError: RegistryClientError | undefined;
    for (let tried = 0; tried < n; tried++) {
      const endpoint = await this.pick(method, deadline).catch((err: unknown) => {
        throw lastError ?? toClientError(err, method);
      });
      const attemptDeadline = kind === "read" && tried < n - 1 ? Math.min(deadline, Date.now() + this.attemptTimeoutMs) : deadline;
      try {
        return await attempt(endpoint, attemptDeadline);
      } catch (err) {
        const error = toClientError(err, method, endpoint.address);
        this.noteFailure(endpoint.index, error);
        const timedOut = error.code === status.DEADLINE_EXCEEDED && attemptDeadline < deadline;
        const again = neverSent(error) || (kind !== "once" && isUnavailable(error)) || timedOut;
        if (!(n > 1 && again && Date.now() < deadline)) throw error;
        lastError = error;
      }
    }
    throw lastError as RegistryClientError;
  }
}

/**
 * Resolves once the client's channel is READY. Rejects when it reports a
 * connection failure (TRANSIENT_FAILURE) or `deadline` passes, instead of
 * waiting out grpc-js's reconnect backoff.
 */
function whenReady(client: RegistryServiceClient, deadline: number): Promise<void> {
  const channel = client.getChannel();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) return resolve();
      if (state === connectivityState.TRANSIENT_FAILURE) return reject(new Error("connection failed"));
      if (state === connectivityState.SHUTDOWN) return reject(new Error("channel closed"));
      if (Date.now() >= deadline) return reject(new Error("connect timed out"));
      channel.watchConnectivityState(state, deadline, (err) => (err ? reject(new Error("connect timed out")) : check()));
    };
    check();
  });
}
