import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { status } from "@grpc/grpc-js";
import { canonicalHost } from "../registry/instance-address.js";
import type { Instance } from "../registry/types.js";
import type { HealthCheckInput } from "../registry/validation.js";
import type { RegistryAuth } from "./auth.js";
import { Backoff, sleep, type BackoffOptions } from "./backoff.js";
import { isPermanent, neverSent, RegistryClientError, toClientError } from "./client-error.js";
import { LivenessKeeper, type HeldRegistration } from "./liveness-keeper.js";
import { RegistryClient, type RegisterOptions, type RegistryClientOptions } from "./registry-client.js";

/**
 * Metadata key holding a random id of one `registerSelf` session. It lets the
 * session find and remove a duplicate of itself left by a Register call whose
 * answer was lost (the registry may have applied it).
 */
export const SESSION_METADATA_KEY = "registry.session";

/** The ttl of a `ttl` check asked for without one, and of the fallback from sessions (docs/client.md gives its value). */
export const DEFAULT_TTL_MS = 15_000;

/** Options of `registerSelf`. */
export interface RegisterSelfOptions extends RegisterOptions {
  /**
   * How the registry tells this instance is alive. Default: a `session`,
   * held by this process (a KeepAlive stream, reopened when it ends): the
   * instance turns UNHEALTHY as soon as the process dies or loses the
   * registry, with no probe to wait for. When `healthCheckPath` is given
   * and this is not, `http`. A `ttl` check is kept by heartbeats at a third
   * of `ttlMs` (`DEFAULT_TTL_MS` when not given); `http`, `grpc` and `tcp` are probed by
   * the registry (serve them with `listenWithHealth`). A registry that holds
   * no sessions (KeepAlive UNIMPLEMENTED) gets a `ttl` registration
   * instead (see `fallbackTtlMs` and the `fallback` event).
   */
  readonly healthCheck?: HealthCheckInput;
  /** The ttl of the registration that replaces a session one when the registry holds no sessions. Default `DEFAULT_TTL_MS`. */
  readonly fallbackTtlMs?: number;
  /** The registration key (Register requires it; also used to clean up duplicates). */
  readonly key: string;
  /** An existing client to use (its connections are shared, not closed by `close()`). */
  readonly client?: RegistryClient;
  /** Otherwise: how to reach the registry (`addresses`, `credentials`, `channelOptions`...). */
  readonly connection?: Omit<RegistryClientOptions, "auth">;
  /**
   * How often the registration is verified (GetInstance with the instance's
   * own credentials); an UNAUTHENTICATED or NOT_FOUND answer means the
   * registry lost it, and it registers again. Default 5000 ms, ±20% jitter.
   */
  readonly checkIntervalMs?: number;
  /** Retry schedule for failed checks and registrations. Default 250 ms doubling to 5 s, half jittered. */
  readonly backoff?: BackoffOptions;
  /**
   * Opt-in: unregister when the process receives these signals (`true`:
   * SIGTERM). If no other listener handles the signal, it is raised again
   * afterwards, so the process still exits as it would have.
   */
  readonly unregisterOnSignal?: boolean | readonly NodeJS.Signals[];
  /** Deadline of each call. Default the client's (5000 ms); 2000 ms for the Drain and Unregister in `close()`. */
  readonly deadlineMs?: number;
  /**
   * How long `close()` waits between marking the instance draining and
   * unregistering it, for calls in flight to finish (routers stop sending
   * new ones once they see the drain). Default 0. `close()` takes its own.
   */
  readonly drainGraceMs?: number;
  /**
   * Gives up start-up when aborted (a process told to stop while the
   * registry is still unreachable): `registerSelf` stops retrying, removes
   * what it registered (a Register still on its way is awaited first, at
   * most its deadline, so none is left behind) and rejects with the
   * signal's reason. Not read once `registerSelf` has resolved: `close()`
   * ends a registration.
   */
  readonly signal?: AbortSignal;
  /**
   * Told of each failure the `retry` event reports, from the first Register
   * on: the event can only be listened to once `registerSelf` has resolved,
   * too late to say why start-up is waiting (an unreachable registry, a TLS
   * mismatch).
   */
  readonly onRetry?: (error: RegistryClientError, delayMs: number) => void;
}

/** Options of `SelfRegistration.close()`. */
export interface CloseOptions {
  /** Longest wait between drain and unregister, ms. Default the registration's `drainGraceMs` (0). */
  readonly graceMs?: number;
  /**
   * Settles when the calls in flight have finished (e.g. a listener's
   * `close(graceMs)`): unregistering then waits for it, at most `graceMs`.
   */
  readonly inFlight?: Promise<unknown>;
  /** `false`: unregister at once, without draining first (the service is already gone, e.g. its process died). Default true. */
  readonly drain?: boolean;
}

/** Events of a `SelfRegistration`. */
export interface SelfRegistrationEvents {
  /** Registered (first time or again): the new instance; `id` and `token` changed. */
  registered: [instance: Instance];
  /** The registry no longer knows this instance (lost data, expired, removed); registering again. */
  lost: [error: RegistryClientError];
  /**
   * Another process registered this address (a newer copy of this service on
   * the same host and port) and replaced this instance: this registration
   * stops, without registering again (which would take the address back).
   */
  replaced: [by: Instance];
  /** A check, a liveness report or a registration failed and will be retried after `delayMs` (0: not retried). */
  retry: [error: RegistryClientError, delayMs: number];
  /**
   * A KeepAlive session was opened for the instance (session checks): the
   * first, one reopened after the last ended, or one taking over from a
   * connection the registry asked to go away.
   */
  sessionOpened: [revision: number];
  /** The registry holds no sessions (`error`: KeepAlive's answer): registered again with a `ttl` check, kept by heartbeats. */
  fallback: [error: RegistryClientError];
}

/**
 * A service's own registration, kept alive: it re-registers whenever the
 * registry answers UNAUTHENTICATED or NOT_FOUND for it (a registry restarted
 * without its data, or an instance removed after failing health checks), with
 * jittered backoff so a fleet does not stampede a restarted registry. For a
 * session or ttl check it also reports the instance alive (`LivenessKeeper`).
 * `close()` unregisters, then ends the session.
 */
export class SelfRegistration extends EventEmitter<SelfRegistrationEvents> {
  private current: HeldRegistration | undefined;
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private readonly session = randomUUID();
  private readonly signalHandlers: [NodeJS.Signals, () => void][] = [];
  private loop: Promise<void> | undefined;
  /** The first registration, while start() makes it: close() waits for a Register in flight. */
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /**
   * Set after a Register whose answer was lost: the registry may still commit
   * it a little later (on etcd, when the deadline is shorter than etcd's
   * minimum lease TTL allows to fence: docs/replicas.md), so the next check
   * looks for a duplicate once more.
   */
  private sweepAtNextCheck = false;
  /** Marked draining: never registered again (the registry may remove it at its drain deadline). */
  private draining: Promise<void> | undefined;
  /** The check registrations ask for; a session one becomes ttl when the registry holds no sessions. */
  private check: HealthCheckInput;
  private readonly keeper: LivenessKeeper;
  /** Settles when the recovery from a lost registration in progress is over. */
  private recovering: Promise<void> | undefined;

  /** Use `registerSelf()`. */
  constructor(
    private readonly client: RegistryClient,
    private readonly ownsClient: boolean,
    private readonly options: RegisterSelfOptions,
  ) {
    super();
    this.backoff = new Backoff(options.backoff);
    this.check = initialCheck(options);
    this.keeper = new LivenessKeeper(
      {
        client,
        current: () => this.current,
        ttlMs: () => this.check.ttlMs ?? DEFAULT_TTL_MS,
        lost: (failed, error) => this.onLost(failed, error),
        fallBackToTtl: (failed, error) => this.fallBackToTtl(failed, error),
        retry: (error, delayMs) => this.emitRetry(error, delayMs),
        sessionOpened: (revision) => this.emit("sessionOpened", revision),
      },
      options.backoff,
    );
  }

  /** The current instance id (changes when it registers again). */
  get id(): string {
    return this.registered().id;
  }

  /** The current secret token. */
  get token(): string {
    return this.registered().token;
  }

  /** The instance as last registered. */
  get instance(): Instance {
    return this.registered().instance;
  }

  /** The current instance credentials, for `RegistryClient`'s `auth` (a function: always the latest). */
  readonly auth = (): RegistryAuth => ({ instanceId: this.id, token: this.token });

  /**
   * Registers for the first time, retrying transient failures; rejects on
   * permanent ones. Then starts reporting liveness and resolves once the
   * first report was made (the session is open) or failed, or a call's
   * deadline has passed.
   */
  async start(): Promise<void> {
    this.starting = this.register(true);
    await this.starting;
    if (this.abort.signal.aborted) return;
    this.installSignalHandlers();
    this.loop = this.verify();
    // Bounded: a registry (or a proxy) that takes the stream but never answers must not hold start-up.
    const waited = new AbortController();
    await Promise.race([this.keeper.start(), sleep(this.options.deadlineMs ?? 5000, waited.signal, true)]);
    waited.abort();
  }

  /**
   * Marks the instance draining: routers stop sending it new calls, the
   * registry still probes it. It is not registered again after this. Best
   * effort (a failure is emitted as `retry`); idempotent.
   */
  drain(): Promise<void> {
    this.draining ??= this.markDraining();
    return this.draining;
  }

  private async markDraining(): Promise<void> {
    const current = this.current;
    if (!current) return;
    try {
      await this.client.drain(current.id, {
        auth: { instanceId: current.id, token: current.token },
        deadlineMs: this.options.deadlineMs ?? 2000,
      });
    } catch (err) {
      const error = toClientError(err, "Drain");
      if (error.code !== status.NOT_FOUND && error.code !== status.UNAUTHENTICATED) this.emitRetry(error, 0);
    }
  }

  /**
   * Stops verifying, drains, waits for calls in flight (`inFlight`, at most
   * `graceMs`), unregisters (best effort, bounded by the deadline), and only
   * then ends its session or heartbeats, so the instance is not reported
   * failing on its way out. Idempotent: later calls get the first one's
   * promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.closing ??= this.shutdown(options);
    return this.closing;
  }

  private async shutdown(options: CloseOptions): Promise<void> {
    this.abort.abort();
    for (const [signal, handler] of this.signalHandlers) process.off(signal, handler);
    // A Register answered after this point would otherwise be left behind.
    await this.starting?.catch(noop);
    await this.loop;
    const current = this.current;
    if (current && options.drain !== false) {
      await this.drain();
      await graceOver(options.graceMs ?? this.options.drainGraceMs ?? 0, options.inFlight);
    }
    // Held until now: a session that ended before the unregister would mark the instance failing first.
    this.keeper.freeze();
    if (current) {
      try {
        // Bounded tighter than other calls: a process on its way out should not wait long for a missing registry.
        await this.client.unregister(current.id, {
          auth: { instanceId: current.id, token: current.token },
          deadlineMs: this.options.deadlineMs ?? 2000,
        });
      } catch (err) {
        const error = toClientError(err, "Unregister");
        // Already gone is fine; anything else is worth telling, but close() still completes.
        if (error.code !== status.NOT_FOUND && error.code !== status.UNAUTHENTICATED) this.emitRetry(error, 0);
      }
    }
    await this.keeper.close();
    if (this.ownsClient) this.client.close();
  }

  /** Verifies the registration every interval; re-registers when the registry lost it. */
  private async verify(): Promise<void> {
    const interval = this.options.checkIntervalMs ?? 5000;
    let delay = jittered(interval);
    while (!this.abort.signal.aborted) {
      await sleep(delay, this.abort.signal, true);
      if (this.abort.signal.aborted) return;
      const current = this.registered();
      try {
        await this.client.getInstance(current.id, {
          auth: { instanceId: current.id, token: current.token },
          deadlineMs: this.options.deadlineMs,
          signal: this.abort.signal,
        });
        this.backoff.reset();
        delay = jittered(interval);
        if (this.sweepAtNextCheck) this.sweepAtNextCheck = !(await this.removeDuplicates());
      } catch (err) {
        if (this.abort.signal.aborted) return;
        const error = toClientError(err, "GetInstance");
        if (error.code === status.UNAUTHENTICATED || error.code === status.NOT_FOUND) {
          if (!(await this.onLost(current, error))) return;
          delay = jittered(interval);
        } else {
          delay = Math.min(this.backoff.next(), interval);
          this.emitRetry(error, delay);
        }
      }
    }
  }

  /**
   * The registry no longer knows `failed`. Drained: removal is what it asked
   * for. Replaced: the address is another process's now. Else it registers
   * again. The check loop and the liveness keeper may both find out; the
   * first recovers, the other waits and goes on with the result. Resolves
   * true while there is a registration to keep.
   */
  private onLost(failed: HeldRegistration, error: RegistryClientError): Promise<boolean> {
    return this.exclusively(failed, async () => {
      if (this.draining || this.abort.signal.aborted) return false;
      const by = await this.replacedBy(failed.instance);
      if (by) {
        this.current = undefined;
        this.emit("replaced", by);
        return false;
      }
      this.emit("lost", error);
      await this.register(false);
      return !this.abort.signal.aborted;
    });
  }

  /**
   * The registry holds no sessions (KeepAlive UNIMPLEMENTED: a registry
   * from before sessions, or a proxy that passes no bidirectional streams):
   * registers again with a ttl check, which the keeper heartbeats, and
   * removes the session registration if registering at the same address did
   * not replace it.
   */
  private fallBackToTtl(failed: HeldRegistration, error: RegistryClientError): Promise<boolean> {
    return this.exclusively(failed, async () => {
      if (this.draining || this.abort.signal.aborted) return false;
      this.check = { kind: "ttl", ttlMs: this.options.fallbackTtlMs ?? DEFAULT_TTL_MS };
      this.emit("fallback", error);
      await this.register(false);
      await this.client
        .unregister(failed.id, { auth: { instanceId: failed.id, token: failed.token }, deadlineMs: this.options.deadlineMs })
        .catch(noop);
      return !this.abort.signal.aborted;
    });
  }

  /** Runs `recover` unless another recovery got there first (then answers whether a registration is left). */
  private async exclusively(failed: HeldRegistration, recover: () => Promise<boolean>): Promise<boolean> {
    while (this.recovering) await this.recovering;
    if (this.current !== failed) return this.current !== undefined && !this.abort.signal.aborted;
    const recovery = recover();
    this.recovering = recovery.then(noop, noop);
    try {
      return await recovery;
    } finally {
      this.recovering = undefined;
    }
  }

  /**
   * Registers, retrying with backoff until it succeeds or the registration is
   * closed. On the first registration a permanent error (bad key, invalid
   * input) is thrown instead.
   */
  private async register(first: boolean): Promise<void> {
    const { serviceType, port, host, metadata, healthCheckPath } = this.options;
    let ambiguous = false;
    while (!this.abort.signal.aborted) {
      try {
        const registered = await this.client.register(
          {
            serviceType,
            port,
            host,
            healthCheckPath,
            healthCheck: this.check,
            metadata: { ...metadata, [SESSION_METADATA_KEY]: this.session },
          },
          { auth: { key: this.options.key }, deadlineMs: this.options.deadlineMs },
        );
        if (this.abort.signal.aborted) {
          // Closed meanwhile: do not leave this registration behind.
          this.current = registered;
          return;
        }
        this.current = registered;
        this.backoff.reset();
        this.emit("registered", registered.instance);
        if (ambiguous) {
          await this.removeDuplicates();
          this.sweepAtNextCheck = true;
        }
        return;
      } catch (err) {
        const error = toClientError(err, "Register");
        if (first && isPermanent(error)) throw error;
        // A lost answer may hide an applied Register: look for a duplicate once registered.
        if (!isPermanent(error) && !neverSent(error)) ambiguous = true;
        const delay = this.backoff.next();
        this.emitRetry(error, delay);
        await sleep(delay, this.abort.signal, true);
      }
    }
  }

  /**
   * The instance of another session that now holds `mine`'s address, if
   * any: a newer process on the same host and port registered it. Undefined
   * when none does, or when the registry cannot say (then it registers again,
   * as it would have).
   */
  private async replacedBy(mine: Instance): Promise<Instance | undefined> {
    try {
      const { instances } = await this.client.getByType(mine.serviceType, {
        includeUnhealthy: true,
        includeDraining: true,
        auth: { key: this.options.key },
        signal: this.abort.signal,
      });
      return instances.find(
        (i) => i.port === mine.port && canonicalHost(i.host) === canonicalHost(mine.host) && i.metadata[SESSION_METADATA_KEY] !== this.session,
      );
    } catch {
      return undefined;
    }
  }

  /** Unregisters other instances of this session (left by a Register whose answer was lost); false when it could not look. */
  private async removeDuplicates(): Promise<boolean> {
    const mine = this.registered().id;
    try {
      const { instances } = await this.client.getByType(this.options.serviceType, {
        includeUnhealthy: true,
        includeDraining: true,
        auth: { key: this.options.key },
      });
      for (const instance of instances) {
        if (instance.id !== mine && instance.metadata[SESSION_METADATA_KEY] === this.session) {
          await this.client.unregister(instance.id, { auth: { key: this.options.key } });
        }
      }
      return true;
    } catch (err) {
      this.emitRetry(toClientError(err, "Unregister"), 0);
      return false;
    }
  }

  private installSignalHandlers(): void {
    const setting = this.options.unregisterOnSignal;
    if (!setting) return;
    const signals: readonly NodeJS.Signals[] = setting === true ? ["SIGTERM"] : setting;
    for (const signal of signals) {
      const handler = (): void => {
        void this.close().finally(() => {
          // Nobody else handles it: behave as if we had not been listening.
          if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
        });
      };
      process.once(signal, handler);
      this.signalHandlers.push([signal, handler]);
    }
  }

  private registered(): HeldRegistration {
    if (!this.current) throw new RegistryClientError(status.FAILED_PRECONDITION, "not registered yet", "registerSelf");
    return this.current;
  }

  private emitRetry(error: RegistryClientError, delayMs: number): void {
    this.options.onRetry?.(error, delayMs);
    if (this.listenerCount("retry") > 0) this.emit("retry", error, delayMs);
  }
}

/** Resolves once `inFlight` settles or `graceMs` has passed, whichever is first (at once for 0 and no `inFlight`). */
async function graceOver(graceMs: number, inFlight: Promise<unknown> | undefined): Promise<void> {
  if (graceMs <= 0) return;
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
  try {
    await (inFlight ? Promise.race([inFlight.then(noop, noop), elapsed]) : elapsed);
  } finally {
    clearTimeout(timer);
  }
}

const noop = (): void => {};

/** The check asked for, with the defaults filled in (see `RegisterSelfOptions.healthCheck`). */
function initialCheck(options: RegisterSelfOptions): HealthCheckInput {
  const asked = options.healthCheck;
  if (asked?.kind === "ttl" && asked.ttlMs === undefined) return { ...asked, ttlMs: DEFAULT_TTL_MS };
  if (asked) return asked;
  return options.healthCheckPath !== undefined ? { kind: "http" } : { kind: "session" };
}

function jittered(ms: number): number {
  return Math.round(ms * (0.8 + 0.4 * Math.random()));
}

/**
 * Registers this service and keeps it registered (SPEC 4.6): resolves once
 * registered and its first liveness report is made (by default a KeepAlive
 * session it then holds, see `healthCheck`); re-registers when the registry
 * answers UNAUTHENTICATED or NOT_FOUND for it; `close()` unregisters. The returned object's `id`,
 * `token` and `auth` always hold the current credentials.
 *
 * @example
 * const self = await registerSelf({
 *   connection: { addresses: ["registry:4000"] },
 *   key: process.env.SERVICE_REGISTRATION_KEY!,
 *   serviceType: "billing",
 *   port: 8080,
 *   unregisterOnSignal: true,
 * });
 * self.on("registered", (i) => log.info({ id: i.id }, "registered"));
 */
export async function registerSelf(options: RegisterSelfOptions): Promise<SelfRegistration> {
  if (!options.client && !options.connection) throw new TypeError("registerSelf needs `client` or `connection`");
  const client = options.client ?? new RegistryClient(options.connection as RegistryClientOptions);
  const registration = new SelfRegistration(client, !options.client, options);
  const { signal } = options;
  const giveUp = (): void => void registration.close();
  signal?.addEventListener("abort", giveUp, { once: true });
  try {
    signal?.throwIfAborted();
    await registration.start();
    signal?.throwIfAborted();
  } catch (err) {
    await registration.close();
    throw err;
  } finally {
    signal?.removeEventListener("abort", giveUp);
  }
  return registration;
}
