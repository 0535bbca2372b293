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
}

/**
 * Reconnect quickly after a registry restart: grpc-js would otherwise back off
 * up to two minutes between connection attempts.
 */
const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 2000,
};

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
  private preferred = 0;
  private refs = 1;

  constructor(private readonly options: ConnectionOptions) {
    if (options.addresses.length === 0) throw new Error("RegistryClient needs at least one registry address");
    this.addresses = [...options.addresses];
    this.clients = this.addresses.map(() => undefined);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
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
        { ...DEFAULT_CHANNEL_OPTIONS, ...this.options.channelOptions },
      );
      this.clients[index] = client;
    }
    return { index, address: this.addresses[index] as string, client };
  }

  /** Moves the preference away from `index` (it failed), to the next address. */
  markFailed(index: number): void {
    if (this.preferred === index) this.preferred = (index + 1) % this.addresses.length;
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
   * while the address cannot be reached, or (for `idempotent` calls) answers
   * UNAVAILABLE. A non-idempotent call that reached a registry is never
   * repeated: it might have been applied. Unless `failFast`, a call that
   * found no registry is retried with a short backoff until its deadline, so
   * a registry restart costs latency, not an error.
   */
  async run<T>(
    method: string,
    deadline: number,
    idempotent: boolean,
    attempt: (endpoint: RegistryEndpoint) => Promise<T>,
  ): Promise<T> {
    const backoff = new Backoff({ initialMs: 50, maxMs: 1000 });
    for (;;) {
      let error: RegistryClientError;
      try {
        return await this.runOnce(method, deadline, idempotent, attempt);
      } catch (err) {
        error = toClientError(err, method);
      }
      const retryable = neverSent(error) || (idempotent && isUnavailable(error));
      const delay = backoff.next();
      if (this.options.failFast || !retryable || this.refs <= 0 || Date.now() + delay >= deadline) throw error;
      await sleep(delay);
    }
  }

  private async runOnce<T>(
    method: string,
    deadline: number,
    idempotent: boolean,
    attempt: (endpoint: RegistryEndpoint) => Promise<T>,
  ): Promise<T> {
    const n = this.addresses.length;
    let lastError: RegistryClientError | undefined;
    for (let tried = 0; tried < n; tried++) {
      const endpoint = await this.pick(method, deadline).catch((err: unknown) => {
        throw lastError ?? toClientError(err, method);
      });
      try {
        return await attempt(endpoint);
      } catch (err) {
        const error = toClientError(err, method, endpoint.address);
        if (!(n > 1 && (neverSent(error) || (idempotent && isUnavailable(error))) && Date.now() < deadline)) throw error;
        lastError = error;
        this.markFailed(endpoint.index);
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
