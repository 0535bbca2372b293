import { status } from "@grpc/grpc-js";
import type { Instance } from "../registry/types.js";
import { Backoff, sleep, type BackoffOptions } from "./backoff.js";
import { toClientError, type RegistryClientError } from "./client-error.js";
import type { RegistryClient } from "./registry-client.js";
import type { RegistrySession } from "./registry-session.js";

/** A registration as `registerSelf` holds it. */
export interface HeldRegistration {
  readonly id: string;
  readonly token: string;
  readonly instance: Instance;
}

/** What the keeper needs from the registration it reports for. */
export interface LivenessHost {
  readonly client: RegistryClient;
  /** The registration now; undefined once there is none to report for (replaced). */
  current(): HeldRegistration | undefined;
  /** The ttl the current registration asked for (the registry's answer does not repeat it). */
  ttlMs(): number;
  /**
   * The registry no longer knows `failed` (NOT_FOUND, UNAUTHENTICATED).
   * Resolves true to go on with whatever `current()` is then, false to stop.
   */
  lost(failed: HeldRegistration, error: RegistryClientError): Promise<boolean>;
  /** The registry holds no sessions (KeepAlive UNIMPLEMENTED): register with a TTL check instead. Same answer as `lost`. */
  fallBackToTtl(failed: HeldRegistration, error: RegistryClientError): Promise<boolean>;
  /** A report failed and is retried after `delayMs` (0: not retried). */
  retry(error: RegistryClientError, delayMs: number): void;
  /** A session was opened (the first, a reopened one, or one taking over from a connection going away). */
  sessionOpened(revision: number): void;
}

/** Why a session ended, and whether it had been open. */
interface SessionEnd {
  readonly error: RegistryClientError | undefined;
  readonly opened: boolean;
}

/**
 * Tells the registry that a `registerSelf` instance is alive, as its check
 * kind asks: a SESSION instance holds a KeepAlive session, reopened with
 * backoff when it ends; a TTL instance heartbeats at a third of its ttl.
 * Probed kinds (HTTP, gRPC, TCP) need nothing from it.
 *
 * A session whose connection leaves READY (the registry's GOAWAY at its
 * maximum connection age, or a failing connection) is replaced without a
 * gap: a new session is opened, on a new connection, before the old one is
 * closed; the registry counts the instance alive while any of its sessions
 * is open.
 */
export class LivenessKeeper {
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private readonly sessions = new Set<RegistrySession>();
  private loop: Promise<void> | undefined;
  private resolveReady!: () => void;
  /** Settles at the first report made, or the first failure, so start-up does not wait on a flaky registry. */
  private readonly ready = new Promise<void>((resolve) => (this.resolveReady = resolve));

  constructor(
    private readonly host: LivenessHost,
    backoff?: BackoffOptions,
  ) {
    this.backoff = new Backoff(backoff);
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** Starts reporting; resolves once the first report was made or failed. */
  start(): Promise<void> {
    this.loop ??= this.run().finally(() => this.resolveReady());
    return this.ready;
  }

  /**
   * Stops opening sessions and sending heartbeats, leaving the session that
   * is open as it is (so the instance stays alive until `close()`).
   */
  freeze(): void {
    this.abort.abort();
  }

  /** Stops, and closes the open sessions (the registry reads "closed by the instance"). */
  async close(): Promise<void> {
    this.freeze();
    await Promise.all([...this.sessions].map((session) => session.close()));
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const current = this.host.current();
      if (!current) return;
      const kind = current.instance.healthCheck?.kind ?? "http";
      let goOn: boolean;
      if (kind === "session") goOn = await this.holdSession(current);
      else if (kind === "ttl") goOn = await this.heartbeat(current);
      else return;
      if (!goOn) return;
    }
  }

  /** Holds sessions for `current` until one ends for good; true to carry on with the next registration. */
  private async holdSession(current: HeldRegistration): Promise<boolean> {
    for (;;) {
      const { error, opened } = await this.sessionsUntilEnd(current);
      if (this.stopped || error === undefined) return false;
      if (!opened && error.code === status.UNIMPLEMENTED) return this.host.fallBackToTtl(current, error);
      // Only an answer to opening says the registration is gone: a session
      // that ends mid-way (NOT_FOUND when removed, UNAVAILABLE at shutdown)
      // is reopened, and the registry's answer to that decides.
      if (!opened && (error.code === status.NOT_FOUND || error.code === status.UNAUTHENTICATED)) return this.host.lost(current, error);
      if (this.host.current() !== current) return true;
      if (opened) this.backoff.reset();
      const delay = this.backoff.next();
      this.host.retry(error, delay);
      this.resolveReady();
      await sleep(delay, this.abort.signal, true);
      if (this.stopped) return false;
      if (this.host.current() !== current) return true;
    }
  }

  /**
   * Opens a session for `current` and keeps one open across connections
   * going away; resolves when the last one ended (error undefined: closed
   * here), saying whether any had opened.
   */
  private sessionsUntilEnd(current: HeldRegistration): Promise<SessionEnd> {
    return new Promise((resolve) => {
      let opened = false;
      let active: RegistrySession;
      let pending: RegistrySession | undefined;
      const adopt = (session: RegistrySession): void => {
        active = session;
        session.once("channelLeftReady", () => {
          if (active === session && !pending && !this.stopped) replace();
        });
        void session.ended.then(() => {
          if (active === session && !pending) resolve({ error: session.error, opened });
        });
      };
      const replace = (): void => {
        const next = this.open(current);
        pending = next;
        next.opened.then(
          (revision) => {
            pending = undefined;
            const old = active;
            adopt(next);
            this.host.sessionOpened(revision);
            void old.close();
          },
          () => {
            pending = undefined;
            // Opening a replacement failed; the old session decides (it may have ended meanwhile).
            if (active.isEnded) resolve({ error: active.error, opened });
          },
        );
      };
      const first = this.open(current);
      adopt(first);
      first.opened.then(
        (revision) => {
          opened = true;
          this.host.sessionOpened(revision);
          this.resolveReady();
        },
        () => undefined,
      );
    });
  }

  private open(current: HeldRegistration): RegistrySession {
    const session = this.host.client.keepAlive(current.id, { auth: { instanceId: current.id, token: current.token } });
    this.sessions.add(session);
    void session.ended.then(() => this.sessions.delete(session));
    return session;
  }

  /** Heartbeats for `current` at a third of its ttl until it is gone; true to carry on with the next registration. */
  private async heartbeat(current: HeldRegistration): Promise<boolean> {
    const periodMs = Math.max(1, Math.floor(this.host.ttlMs() / 3));
    while (!this.stopped) {
      if (this.host.current() !== current) return true;
      let delay = periodMs;
      try {
        // One heartbeat may not take longer than its slot: the next one is due then.
        await this.host.client.heartbeat(current.id, {
          auth: { instanceId: current.id, token: current.token },
          deadlineMs: periodMs,
          signal: this.abort.signal,
        });
        this.backoff.reset();
        this.resolveReady();
      } catch (err) {
        if (this.stopped) return false;
        const error = toClientError(err, "Heartbeat");
        if (error.code === status.NOT_FOUND || error.code === status.UNAUTHENTICATED) return this.host.lost(current, error);
        if (error.code === status.UNIMPLEMENTED) {
          // A registry that takes no heartbeats cannot hear them later either.
          this.host.retry(error, 0);
          return false;
        }
        delay = Math.min(this.backoff.next(), periodMs);
        this.host.retry(error, delay);
        this.resolveReady();
      }
      await sleep(delay, this.abort.signal, true);
    }
    return false;
  }
}
