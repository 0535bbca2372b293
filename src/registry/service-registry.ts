import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type { ProbeResult, ProbeTarget } from "../health/http-probe.js";
import { CheckProber } from "../health/check-prober.js";
import { ProbeScheduler } from "../health/probe-scheduler.js";
import { CHANGE_LINE, flushChangeLines } from "../logging/batch-lines.js";
import { structuredLogger, type StructuredLogger } from "../logging/registry-logger.js";
import { MemoryStore } from "../store/memory-store.js";
import type { LivenessRelay, Mutation, RegistryStore } from "./registry-store.js";
import { planBatch } from "./batch-plan.js";
import { CommitQueue, type AbortState, type QueuedCommit } from "./commit-queue.js";
import { CommitReporter } from "./commit-outcomes.js";
import { hashSecret, newToken, secretMatches } from "./credentials.js";
import { DrainDeadlines } from "./drain-deadlines.js";
import { EventHistory } from "./event-history.js";
import { HealthStatusHandler } from "./health-status-handler.js";
import { InstanceIndex } from "./instance-index.js";
import { InstanceQuotas, UNLIMITED, type QuotaReservation } from "./instance-quotas.js";
import { newInstanceId } from "./instance-id.js";
import { MassFailureGuard, type MassFailureSnapshot } from "./mass-failure-guard.js";
import { instanceNotFound, RegistryError, type RegistryErrorCode } from "./registry-error.js";
import { ReportedLiveness } from "./reported-liveness.js";
import { resolveRegistryOptions, type ResolvedRegistryOptions, type ServiceRegistryOptions } from "./registry-options.js";
import { matchesSelector } from "./selector.js";
import { TypePanic } from "./type-panic.js";
import { healthCheckOf, isProbed, type Change, type HealthCheckKind, type Instance, type RemovalReason, type Selector, type ServiceSummary, type StoredInstance } from "./types.js";
import { assertProbeTargetAllowed, validateRegisterInput, validateServiceType, type RegisterInput } from "./validation.js";
import { WatchHub, type WatchHubStats } from "./watch-hub.js";
import { shuttingDown, type Watcher, type WatchOptions, type WatchSource } from "./watcher.js";

/** The registry's in-process events (the seed's four), each with typed arguments. */
export interface RegistryEvents {
  instanceRegistered: [instance: Instance];
  instanceRemoved: [instance: Instance, reason: RemovalReason];
  /** Fired for every passing probe; `data` is the parsed JSON body, if any. */
  healthCheckPassed: [instance: Instance, data: unknown];
  /** Fired for every failing probe. */
  healthCheckFailed: [instance: Instance, reason: string];
  /** Every committed change (registration, removal, health transition), in revision order. */
  change: [change: Change];
  /** The store was lost (`false`) or regained (`true`); while lost, reads and writes are refused. */
  availability: [available: boolean, reason: string];
  /**
   * This process started (`true`) or stopped (`false`) suspecting its own
   * network: most of its probes failed at once (see `MassFailureGuard`).
   * While suspected, no health state changes and nothing expires.
   */
  massFailure: [suspected: boolean, seen: MassFailureSnapshot];
}

/** A successful registration: the instance and its secret token (shown once). */
export interface Registration {
  readonly instance: Instance;
  readonly token: string;
}

/** How a registration was asked for, beyond what it registers. */
export interface RegisterOptions {
  /** The registration key's identity (`keyIdOf`), counted by MAX_INSTANCES_PER_KEY and kept with the instance. */
  readonly keyId?: string | undefined;
  /**
   * When the caller stops waiting (epoch ms): past it, a shared store does
   * not commit the registration at all.
   */
  readonly notAfter?: number | undefined;
  /**
   * Aborted when the caller stops listening (its call ended, the server is
   * going down): a mutation still waiting for its batch is then dropped, and
   * the call fails with `RegistryError("cancelled")`.
   */
  readonly signal?: AbortState | undefined;
}

/** Which of a type's instances GetByType answers with. */
export interface TypeQuery {
  /** Unhealthy instances too. */
  readonly includeUnhealthy?: boolean | undefined;
  /** Draining instances too. */
  readonly includeDraining?: boolean | undefined;
  /** Only instances whose metadata matches (see `matchesSelector`). */
  readonly selector?: Selector | undefined;
}

/** GetByType's answer. */
export interface TypeAnswer {
  /** Shared and frozen when no selector was given: never mutate. */
  readonly instances: readonly Instance[];
  readonly revision: number;
  /**
   * The type is in panic (fewer than the panic threshold of its instances
   * are healthy): `instances` lists unhealthy ones too.
   */
  readonly panic: boolean;
}

/** How a removal was asked for. */
export interface UnregisterOptions {
  /** As `RegisterOptions.signal`. */
  readonly signal?: AbortState | undefined;
}

/** How a health change's commit ended: made, the instance gone meanwhile, or the store failing (logged). */
type HealthCommit =
  | { readonly outcome: "committed"; readonly change: Change }
  | { readonly outcome: "gone" }
  | { readonly outcome: "failed"; readonly error: RegistryError };

/**
 * How long a shared store must stay lost before this replica ends its
 * sessions so their clients move: longer than a replica thawed from a freeze
 * takes to find etcd again, shorter than the membership lease that vouches
 * for its sessions meanwhile (`ETCD_MEMBER_TTL_S`, at least 2 s).
 */
const SESSION_MOVE_AFTER_MS = 1000;

/** The shape of the ids `newInstanceId` makes (UUID text). */
const INSTANCE_ID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Sessions one instance may hold open on one replica: one, and a second
 * while a client reconnects before its old stream has timed out; more is a
 * client opening streams in a loop, each holding the registry's memory.
 */
const MAX_SESSIONS_PER_INSTANCE = 4;

/** A hash to compare against for unknown ids, so they take as long as known ones. */
const UNKNOWN_ID_HASH = hashSecret(randomUUID());

/**
 * The registry core: instances per service type, global revisions, health
 * probing and the watch hub. Knows nothing of gRPC or HTTP APIs.
 *
 * Every state change goes through one commit queue and is committed to the
 * store first; the index (the one instance table), the history, the watchers
 * and the events follow from committed changes only, in revision order:
 * those the core planned and a local store persisted, or those a shared
 * store's change feed reports (from every replica).
 *
 * @example
 * const registry = new ServiceRegistry({ healthCheckInterval: 10_000 });
 * await registry.start();
 * registry.on("instanceRegistered", (i) => console.log(i.serviceType, i.host, i.port));
 * const { instance, token } = await registry.register({ serviceType: "api", host: "10.0.0.7", port: 8080 });
 */
export class ServiceRegistry extends EventEmitter<RegistryEvents> {
  private readonly options: ResolvedRegistryOptions;
  private readonly store: RegistryStore;
  private readonly logger: StructuredLogger;
  private readonly index: InstanceIndex;
  private readonly quotas: InstanceQuotas;
  private readonly healthStatus: HealthStatusHandler;
  private readonly drainDeadlines: DrainDeadlines;
  private readonly guard: MassFailureGuard;
  private readonly panics = new TypePanic();
  /**
   * Failure-driven mutations (turning unhealthy, expiry) held while the guard
   * could still trip on this interval's failures, by instance, in the order
   * they were first held; `since` is when.
   */
  private readonly held = new Map<string, { mutation: Mutation; readonly since: number }>();
  /** Re-judges the guard while suspected, so it can leave even when no probe comes. */
  private guardTimer: NodeJS.Timeout | undefined;
  /** Ends this replica's sessions once its store has been lost a while (see `setAvailability`). */
  private sessionMoveTimer: NodeJS.Timeout | undefined;
  /** Tries the store's own write while its commits fail (see `recheckStoreWhile`). */
  private storeRecheckTimer: NodeJS.Timeout | undefined;
  /** When the guard last stopped suspecting this process (epoch ms): expiry counts from there. */
  private guardLeftAt = 0;
  private readonly queue: CommitQueue;
  private readonly commits: CommitReporter;
  private readonly prober: CheckProber | undefined;
  /** Clocks of the instances that report their own liveness (ttl heartbeats, sessions). */
  private readonly reported: ReportedLiveness;
  /** KeepAlive streams held by this process, by instance. */
  private readonly sessions = new Map<string, Set<{ onEnded: (reason: RegistryError) => void }>>();
  /** Set by `releaseSessions`: no session opens any more. */
  private sessionsReleased = false;
  /** Why the last session of a SESSION instance ended, until one opens again (see `reconcileSession`). */
  private readonly sessionEnds = new Map<string, string>();
  private readonly scheduler: ProbeScheduler | undefined;
  /** Instances with a health mutation in flight, so one transition is committed once. */
  private readonly pendingHealth = new Map<string, Promise<HealthCommit>>();
  private readonly revisionWaiters: { revision: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private history: EventHistory | undefined;
  private hub: WatchHub | undefined;
  private currentEpoch = "";
  private currentRevision = 0;
  private state: "new" | "starting" | "running" | "closing" | "closed" = "new";
  /** Why the store is unavailable, or undefined while it is available. */
  private unavailableReason: string | undefined;

  constructor(options: ServiceRegistryOptions = {}) {
    super();
    this.options = resolveRegistryOptions(options);
    this.index = new InstanceIndex({ percent: this.options.panicThreshold, minInstances: this.options.panicMinInstances });
    this.quotas = new InstanceQuotas({ ...UNLIMITED, ...options.quotas }, this.index, options.onQuotaRefused);
    this.store = options.store ?? new MemoryStore();
    this.logger = structuredLogger(options.logger ?? console);
    this.healthStatus = new HealthStatusHandler(this.options, (serviceType) => this.expiryFrom(serviceType));
    this.drainDeadlines = new DrainDeadlines(this.options.drainTimeout, this.options.now, (id) => this.expireDrain(id));
    this.guard = new MassFailureGuard({
      thresholdPercent: this.options.massFailureThreshold,
      minInstances: this.options.massFailureMinInstances,
      minServiceTypes: this.options.massFailureMinServiceTypes,
      // A probe's result comes up to a timeout after it was due: a fault's failures arrive over that much more.
      intervalMs: this.options.healthCheckInterval + this.options.healthCheckTTL,
    });
    this.commits = new CommitReporter(options.commitObserver, (failing) => this.recheckStoreWhile(failing));
    this.reported = new ReportedLiveness(this.options.healthCheckInterval, (id, reason) => this.onReportedFailure(id, reason));
    this.queue = new CommitQueue((batch) => this.commitBatch(batch), { oneBatchAtATime: this.store.plannedBy === "core" });
    if (this.options.healthChecks) {
      // Clients are loaded at the first probe that needs them (see CheckProber): importing the registry loads neither undici nor grpc-js.
      const prober = this.options.probe
        ? undefined
        : new CheckProber({ timeoutMs: this.options.healthCheckTTL, targetPolicy: this.options.probeTargetPolicy });
      const probe = this.options.probe ?? ((t: ProbeTarget, s: AbortSignal) => (prober as CheckProber).probe(t, s));
      this.prober = prober;
      this.scheduler = new ProbeScheduler({
        intervalMs: this.options.healthCheckInterval,
        maxConcurrent: this.options.healthCheckMaxRequests,
        batchSize: this.options.healthCheckBatchSize,
        // Re-probes of an instance already found unhealthy yield to the others' probes.
        yieldAfterFailures: this.options.unhealthyThreshold,
        probe,
        onResult: (target, result) => this.onProbeResult(target, result),
        onError: (err) => this.logger.error({ err }, "health check result handling failed"),
      });
    }
  }

  /** Opens the store, loads its state and starts probing. */
  async start(): Promise<void> {
    if (this.state !== "new") throw new Error("ServiceRegistry.start() may be called once");
    this.state = "starting";
    const store = this.store;
    if (store.plannedBy === "store") store.onProgress?.((revision) => this.applyProgress(revision));
    const loaded = await store.open((change) => this.applyChanges([change]));
    this.currentEpoch = loaded.epoch;
    this.currentRevision = loaded.revision;
    this.history = new EventHistory(this.options.historySize, { changes: loaded.history, floor: loaded.historyFloor });
    for (const instance of loaded.instances) {
      this.index.put(instance);
      // Loaded instances are spread over an interval; new registrations are probed soon.
      if (this.probesHere(instance.id)) this.startProbing(instance, true);
    }
    for (const { serviceType } of this.index.summaries()) {
      if (this.panics.set(serviceType, this.index.inPanic(serviceType), this.options.now()) === "entered") this.logPanic(serviceType, true);
    }
    // What each loaded change left its type in is not stored; a type's latest one is its state now.
    const latestSeen = new Set<string>();
    for (let i = loaded.history.length - 1; i >= 0; i--) {
      const change = loaded.history[i] as Change;
      const type = change.instance.serviceType;
      if (latestSeen.has(type)) continue;
      latestSeen.add(type);
      if (this.index.inPanic(type)) this.panics.flagLoaded(change);
    }
    if (store.plannedBy === "store") {
      store.probeOwnership?.onChange(() => this.rebalanceProbes());
      store.livenessRelay?.onReport((id, report) => this.onLivenessReport(id, report));
    }
    store.onAvailabilityChange?.((available, reason) => this.setAvailability(available, reason));
    const registry = this;
    const source: WatchSource = {
      epoch: this.currentEpoch,
      history: this.history,
      get revision() {
        return registry.currentRevision;
      },
      snapshot: (serviceType) => this.index.list(serviceType),
      panicAfter: (change) => this.panics.flaggedAfter(change),
      panicTypes: (serviceType) => this.panics.types(serviceType),
    };
    this.hub = new WatchHub(source, {
      queueLimit: this.options.watchQueueLimit,
      catchUpBatch: Math.min(this.options.watchQueueLimit, 256),
      bookmarkIntervalMs: this.options.bookmarkInterval,
    });
    this.state = "running";
    this.scheduler?.start();
    this.replaceShadowed();
  }

  /**
   * Runs a transport's handling of a write (`task`) in the commit queue's
   * next turn, together with the turn's other writes (see CommitQueue).
   */
  inWriteTurn(task: () => void): void {
    this.queue.runInTurn(task);
  }

  /** Names the data set revisions belong to. */
  get epoch(): string {
    return this.currentEpoch;
  }

  /** The latest applied revision. */
  get revision(): number {
    return this.currentRevision;
  }

  /**
   * Registers an instance; resolves once committed and visible to readers.
   * Refused with RESOURCE_EXHAUSTED when it would exceed a quota.
   */
  async register(input: RegisterInput, options: RegisterOptions = {}): Promise<Registration> {
    this.assertRunning();
    const { keyId, notAfter, signal } = options;
    let token = "";
    let reservation: QuotaReservation | undefined;
    try {
      // Prepared with the rest of its batch (see CommitQueue).
      const change = await this.commit(() => {
        const valid = validateRegisterInput(input);
        assertProbeTargetAllowed(valid.host, this.options.probeTargetPolicy);
        const serviceType = this.index.sharedType(valid.serviceType);
        const id = newInstanceId();
        // Replacing the instance at this address adds none (see planBatch).
        const replacing = this.index.atAddress(serviceType, valid.host, valid.port);
        if (!replacing || replacing.keyId !== keyId) reservation = this.quotas.reserve(id, serviceType, keyId);
        token = newToken();
        const now = this.options.now();
        return {
          op: "register",
          instance: {
            id, ...valid, serviceType, health: "healthy", draining: false, drainingSince: 0, registeredAt: now, updatedAt: now, tokenHash: hashSecret(token), keyId,
          },
          ...(notAfter === undefined ? {} : { notAfter }),
          ...(replacing === undefined ? {} : { replaces: replacing.id }),
        };
      }, signal);
      return { instance: change.instance, token };
    } finally {
      reservation?.release();
    }
  }

  /** Removes an instance. Rejects with NOT_FOUND when it is not registered. */
  async unregister(id: string, reason: RemovalReason = "unregistered", options: UnregisterOptions = {}): Promise<Change> {
    this.assertRunning();
    return this.commit(() => ({ op: "remove", id, reason, at: this.options.now() }), options.signal);
  }

  /**
   * Marks an instance draining: left out of GetByType and resolvers, still
   * probed, removed when it unregisters or at the drain deadline. Draining a
   * draining instance changes nothing and answers it as it is. NOT_FOUND
   * when it is not registered.
   */
  async drain(id: string, options: UnregisterOptions = {}): Promise<{ instance: Instance; revision: number }> {
    this.assertRunning();
    const current = this.index.get(id);
    if (current?.draining) return { instance: current, revision: current.revision };
    const change = await this.commit(() => ({ op: "drain", id, at: this.options.now() }), options.signal);
    return { instance: change.instance, revision: change.revision };
  }

  /**
   * Checks instance credentials. Unknown ids and wrong tokens get the same
   * error after the same work, so the answer is no oracle for valid ids.
   * While the store is unreachable the index may not hold an instance
   * registered elsewhere: the answer is UNAVAILABLE (try another replica),
   * never UNAUTHENTICATED, which an SDK reads as "register again".
   */
  authenticate(id: string, token: string): Instance {
    this.assertFresh();
    const instance = this.index.get(id);
    const matches = secretMatches(token, instance?.tokenHash ?? UNKNOWN_ID_HASH);
    if (!instance || !matches) throw new RegistryError("unauthenticated", "invalid instance credentials");
    return instance;
  }

  /** Whether this registry holds an instance with this id now (from memory; no store read, no error). */
  has(id: string): boolean {
    return this.index.get(id) !== undefined;
  }

  /** One instance by id; NOT_FOUND when absent. */
  getInstance(id: string): Instance {
    this.assertFresh();
    const instance = this.index.get(id);
    if (!instance) throw instanceNotFound(id);
    return instance;
  }

  /**
   * Instances of a type: healthy, not draining ones unless the query says
   * otherwise (`true` is the seed's `includeUnhealthy`). A type in panic
   * (fewer than `panicThreshold` percent of its instances healthy, and at
   * least `panicMinInstances` of them) answers with its unhealthy instances
   * too, and `panic` says so: with most of a type failing its checks, the
   * checks are the likelier thing to be wrong, and spreading calls over
   * every instance beats piling them all on the few that pass (Envoy's
   * panic threshold). Without a selector the array is the index's shared,
   * frozen list: the same object until the type changes.
   */
  getByType(serviceType: string, query: boolean | TypeQuery = false): TypeAnswer {
    validateServiceType(serviceType);
    this.assertFresh();
    const { includeUnhealthy = false, includeDraining = false, selector } = typeof query === "boolean" ? { includeUnhealthy: query } : query;
    const panic = this.index.inPanic(serviceType);
    let instances: readonly Instance[];
    if (includeUnhealthy || panic) {
      instances = includeDraining ? this.index.list(serviceType) : this.index.undrained(serviceType);
    } else {
      instances = includeDraining ? this.index.list(serviceType).filter((i) => i.health === "healthy") : this.index.serving(serviceType);
    }
    if (selector !== undefined) instances = instances.filter((i) => matchesSelector(i, selector));
    return { instances, revision: this.currentRevision, panic };
  }

  /** Counts per service type. */
  listServices(): { services: ServiceSummary[]; revision: number } {
    this.assertFresh();
    return { services: this.index.summaries(), revision: this.currentRevision };
  }

  /**
   * Resolves once this registry has applied `revision`, when `epoch` is its
   * own and the revision is ahead of it: a replica behind a client's resume
   * point (another replica served it newer changes) waits for the change
   * instead of answering RESET with a snapshot older than what the client has
   * seen. UNAVAILABLE after the `resumeWait` option, so the client tries
   * another replica. Resolves at once otherwise (no resume, another epoch,
   * a revision already applied, a revision above Number.MAX_SAFE_INTEGER,
   * a store of this process): the watch then answers RESET.
   */
  async reach(epoch: string, revision: number): Promise<void> {
    this.assertRunning();
    if (epoch !== this.currentEpoch || revision <= this.currentRevision) return;
    // A store of this process (memory, SQLite) holds the only history: no
    // replica is further ahead, and a resume point past it comes from a
    // history it no longer has (commits a power failure lost with
    // STORE_SYNC=normal, a data directory restored from an older backup).
    // Waiting would let later, different changes reach that revision, and the
    // watcher would resume past them unseen.
    if (this.store.plannedBy === "core") return;
    // Beyond any revision a registry can count to: no replica will ever reach
    // it, so the watch answers RESET at once instead of waiting in vain.
    if (revision > Number.MAX_SAFE_INTEGER) return;
    this.assertFresh();
    this.resumesWaiting++;
    try {
      if (await this.reached(revision)) return;
    } finally {
      this.resumesWaiting--;
    }
    throw new RegistryError(
      "unavailable",
      `this replica has not reached revision ${revision} yet (it is at ${this.currentRevision}); resume on another replica`,
    );
  }

  /** Watches waiting in `reach` for a revision this registry has not applied yet. */
  resumesWaiting = 0;

  /**
   * Answers `read` (about instance `id`, from this replica's index) and, when
   * it fails with `missCode`, looks the instance up in a shared store: a
   * replica that is behind (another replica registered it a moment ago, this
   * one's watch has not delivered it yet) waits until it has applied the
   * instance's latest change, bounded by `resumeWait`, and answers `read`
   * again; UNAVAILABLE when it cannot catch up in time, so the client tries
   * another replica instead of reading "unknown instance" (which `registerSelf`
   * takes as "register again"). Each miss costs the store one read; a store
   * of this process (memory, SQLite) is the index's own truth and is not
   * asked. Synchronous unless the store is asked.
   */
  readCaughtUp<T>(id: string, missCode: RegistryErrorCode, read: () => T): T | Promise<T> {
    try {
      return read();
    } catch (err) {
      if (this.store.plannedBy === "core" || !this.store.lookup || !(err instanceof RegistryError) || err.code !== missCode) throw err;
      // Ids this registry makes are UUIDs: anything else is a miss without asking the store.
      if (!INSTANCE_ID_SHAPE.test(id)) throw err;
      return this.catchUpOn(id).then(read);
    }
  }

  private async catchUpOn(id: string): Promise<void> {
    let revision: number | undefined;
    try {
      revision = this.store.plannedBy === "store" ? await this.store.lookup?.(id) : undefined;
    } catch (err) {
      throw new RegistryError("unavailable", "this replica could not check its store; try another replica", { cause: err });
    }
    if (revision === undefined || revision <= this.currentRevision) return;
    this.assertFresh();
    if (await this.reached(revision)) return;
    throw new RegistryError(
      "unavailable",
      `this replica has not caught up with revision ${revision} yet (it is at ${this.currentRevision}); try another replica`,
    );
  }

  /** True once `revision` is applied; false after `resumeWait`. Rejects when the store is lost or the registry closes. */
  private async reached(revision: number): Promise<boolean> {
    if (revision <= this.currentRevision) return true;
    const waiter = { revision, resolve: () => {}, reject: (_err: Error) => {} };
    const applied = new Promise<boolean>((resolve, reject) => {
      waiter.resolve = () => resolve(true);
      waiter.reject = reject;
    });
    this.revisionWaiters.push(waiter);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.options.resumeWait)));
    try {
      return await Promise.race([applied, timedOut]);
    } finally {
      clearTimeout(timer);
      // A revision never reached (a made-up one) must not leave its waiter behind.
      const at = this.revisionWaiters.indexOf(waiter);
      if (at !== -1) this.revisionWaiters.splice(at, 1);
    }
  }

  /** Opens a watch: a snapshot or a resume, then live changes (SPEC 4.3). */
  watch(options: WatchOptions): Watcher {
    this.assertRunning();
    if (options.serviceType !== "") validateServiceType(options.serviceType);
    this.assertFresh();
    return (this.hub as WatchHub).open(options);
  }

  /** Watcher counters for metrics. */
  watchStats(): WatchHubStats {
    return this.hub?.stats() ?? { watchers: 0, parked: 0, resets: 0 };
  }

  /** Whether this process suspects its own network (see `MassFailureGuard`), and how often it has. */
  get massFailure(): { readonly suspected: boolean; readonly entries: number } {
    return { suspected: this.guard.suspected, entries: this.guard.entries };
  }

  /** Probe schedule lag over recent probes. */
  probeLag(): ReturnType<ProbeScheduler["lagStats"]> {
    return this.scheduler?.lagStats() ?? { count: 0, p50: 0, p99: 0, max: 0 };
  }

  /** Number of live instances. */
  get size(): number {
    return this.index.size;
  }

  /** Stops probing, ends every watch with UNAVAILABLE and closes the store. */
  async close(): Promise<void> {
    if (this.state === "closing" || this.state === "closed") return;
    const wasStarted = this.state !== "new";
    this.state = "closing";
    clearInterval(this.guardTimer);
    clearTimeout(this.sessionMoveTimer);
    await this.scheduler?.stop();
    this.drainDeadlines.clear();
    this.reported.clear();
    this.endSessions(undefined, shuttingDown());
    this.prober?.close();
    // Calls already accepted are committed and answered before the store closes.
    await this.queue.drain();
    clearTimeout(this.storeRecheckTimer);
    this.storeRecheckTimer = undefined;
    this.hub?.endAll(shuttingDown());
    this.rejectWaiters(shuttingDown());
    if (wasStarted) await this.store.close();
    this.state = "closed";
  }

  /** Always answers with a promise: callers (the prober) attach their clean-up to it. */
  private commit(prepare: () => Mutation, signal?: AbortState): Promise<Change> {
    try {
      this.assertFresh();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.queue.submit(prepare, signal);
  }

  /**
   * Commits one batch from the queue and settles each of its entries once
   * its change is applied (visible to readers) or has failed.
   *
   * A store of one process gets the changes planned here against the index,
   * the one instance table; only once it has persisted them are they
   * applied, so a failed write leaves nothing to undo. A shared store plans
   * and numbers its commits itself and reports them through its change feed.
   */
  private async commitBatch(batch: readonly QueuedCommit[]): Promise<void> {
    const store = this.store;
    const mutations = batch.map((entry) => entry.mutation);
    const started = performance.now();
    if (store.plannedBy === "core") {
      const { results: planned, changes } = planBatch(this.index, this.currentRevision, mutations);
      let results: readonly (Change | Error)[] = planned;
      try {
        if (changes.length > 0) await store.commitBatch(changes);
      } catch (err) {
        const failure = asError(err);
        results = planned.map((r) => (r instanceof Error ? r : failure));
      }
      // Persisted: the changes are the truth now, whatever applying them runs into.
      if (results === planned) this.applyCommitted(changes);
      this.reportCommits(mutations, results, started);
      batch.forEach((entry, i) => settle(entry, results[i] as Change | Error));
      return;
    }
    // Each mutation is answered as soon as it is committed and applied, not with its batch's slowest.
    await Promise.all(
      store.commitBatch(mutations).map(async (committed, i) => {
        const entry = batch[i] as QueuedCommit;
        let result: Change | Error;
        try {
          result = await committed;
        } catch (err) {
          result = asError(err);
        }
        this.reportCommits([entry.mutation], [result], started);
        // Applied from the store's feed, which may not have delivered it yet.
        if (!(result instanceof Error) && result.revision > this.currentRevision) {
          try {
            await this.applied(result.revision);
          } catch (err) {
            entry.reject(err);
            return;
          }
        }
        settle(entry, result);
      }),
    );
  }

  /** Applies a persisted batch; a failure there (a logger that throws) is logged, the changes stay committed. */
  private applyCommitted(changes: readonly Change[]): void {
    try {
      this.applyChanges(changes);
    } catch (err) {
      this.logger.error({ err }, "applying committed changes failed");
    }
  }

  private reportCommits(mutations: readonly Mutation[], results: readonly (Change | Error)[], started: number): void {
    try {
      this.commits.report(mutations, results, started);
    } catch (err) {
      this.logger.error({ err }, "the commit observer threw");
    }
  }

  /**
   * The one path by which state changes: committed changes, in revision
   * order, from the commit queue (stores of one process) or from the store's
   * change feed (shared stores, changes of every replica). Updates the index
   * (and the quotas' count of registrations in flight) and history, logs
   * each change, publishes the batch to the watchers once, fires the events,
   * and releases calls waiting for these revisions.
   */
  private applyChanges(changes: readonly Change[]): void {
    const applied: Change[] = [];
    for (const change of changes) {
      if (change.revision <= this.currentRevision) continue; // already applied (replayed by a shared store)
      this.index.apply(change);
      this.quotas.applied(change);
      (this.history as EventHistory).append(change);
      this.currentRevision = change.revision;
      applied.push(change);
      const { instance } = change;
      this.notePanic(change);
      if (change.kind === "registered") {
        if (this.probesHere(instance.id)) this.startProbing(instance);
        this.logger.info(logFields(instance, change.revision), CHANGE_LINE.registered);
        this.fire("instanceRegistered", instance);
      } else if (change.kind === "removed") {
        this.stopProbing(instance.id);
        this.sessionEnds.delete(instance.id);
        if (this.sessions.has(instance.id)) {
          this.endSessions(instance.id, new RegistryError("not_found", `instance ${instance.id} was removed (${change.reason}); register again`));
        }
        this.logger.info({ ...logFields(instance, change.revision), reason: change.reason }, CHANGE_LINE.removed);
        this.fire("instanceRemoved", instance, change.reason);
      } else if (change.kind === "draining") {
        // Its probes go on, but failing ones are expected (it is going away): no evidence of a fault here.
        this.guard.untrack(instance.id);
        this.held.delete(instance.id);
        if (this.probesHere(instance.id)) this.drainDeadlines.arm(instance.id, instance.drainingSince);
        this.logger.info(logFields(instance, change.revision), CHANGE_LINE.draining);
      } else {
        const fields = { ...logFields(instance, change.revision), health: instance.health };
        this.logger.info(change.failureReason === undefined ? fields : { ...fields, reason: change.failureReason }, CHANGE_LINE.health);
      }
    }
    if (applied.length === 0) return;
    // One write for the batch's lines (a logger that holds them: the server's), before anyone hears of it.
    flushChangeLines(this.logger);
    this.hub?.publishChanges(applied);
    for (const change of applied) this.fire("change", change);
    this.releaseWaiters();
  }

  /**
   * The store delivered every change up to `revision`, and none lies after the
   * last one applied: the revision moves on with no history entry (a watcher
   * resuming from anywhere in between gets exactly the changes after it),
   * open watchers' positions and BOOKMARKs follow, and resumes waiting in
   * `reach` for it are released.
   */
  private applyProgress(revision: number): void {
    if (revision <= this.currentRevision) return;
    this.currentRevision = revision;
    this.hub?.publishProgress(revision);
    this.releaseWaiters();
  }

  /**
   * One probe result: the seed's events, the guard's count, and the health
   * mutation it calls for, if any. While the guard suspects this process's
   * network nothing is committed (no transition either way, no expiry); while
   * it could still trip, a failure-driven mutation waits in `held`.
   */
  private onProbeResult(target: ProbeTarget, result: ProbeResult): void {
    const instance = this.index.get(target.id);
    if (!instance || this.state !== "running") return;
    this.onCheckResult(instance, result, true);
  }

  /**
   * One check result, probed or reported (a heartbeat, a missed ttl, no
   * session open); a session's opening and end go through
   * `reconcileSession` instead. The seed's events, the guard's count (probes only: the
   * guard judges this process's reach to what it probes), and the health
   * mutation it calls for. Answers the health commit it started, if any.
   */
  private onCheckResult(instance: StoredInstance, result: ProbeResult, probed: boolean): Promise<HealthCommit> | undefined {
    if (result.ok) this.fire("healthCheckPassed", instance, result.data);
    else this.fire("healthCheckFailed", instance, result.reason);

    const now = this.options.now();
    if (probed) this.noteGuard(this.guard.record(instance.id, result.ok, now, instance.health === "healthy"), now);
    const failureReason = result.ok ? undefined : result.reason;
    const pending = this.pendingHealth.get(instance.id);
    if (pending) {
      this.releaseHeld(now);
      return pending;
    }
    let mutation = this.guard.suspected ? undefined : this.healthStatus.record(instance, result.ok, now, failureReason);
    const held = this.held.get(instance.id);
    // A draining instance is not the guard's evidence (it is going away): its failures are not held.
    if (probed && mutation && failureDriven(mutation) && !instance.draining && this.guard.holdFailure(held === undefined)) {
      // In place: the map stays in the order instances were first held.
      if (held) held.mutation = mutation;
      else this.held.set(instance.id, { mutation, since: now });
      mutation = undefined;
    } else if (held) {
      this.held.delete(instance.id);
    }
    let committed: Promise<HealthCommit> | undefined;
    if (mutation) committed = this.commitHealth(instance.id, mutation);
    else {
      this.hub?.publishProbe({
        instance,
        passed: result.ok,
        revision: this.currentRevision,
        ...(failureReason ? { failureReason } : {}),
      });
    }
    this.releaseHeld(now);
    return committed;
  }

  /**
   * While a local store's commits fail, tries its own write
   * (`checkWritable`) every health check interval, and reports the store
   * recovered once one succeeds. Otherwise only a commit could say so, and a
   * registry reporting NOT_SERVING may be sent none (a balancer routing by
   * /healthz): it would stay out of service with its disk long freed.
   */
  private recheckStoreWhile(failing: boolean): void {
    clearTimeout(this.storeRecheckTimer);
    this.storeRecheckTimer = undefined;
    const store = this.store;
    if (!failing || store.plannedBy !== "core" || !store.checkWritable) return;
    const check = store.checkWritable.bind(store);
    const arm = (): void => {
      const timer = setTimeout(() => {
        check().then(
          // Unless a commit said so first, or the registry closed meanwhile.
          () => void (this.storeRecheckTimer === timer && this.commits.recovered()),
          // Still failing, and not recovered or closed meanwhile: try again an interval later.
          () => void (this.storeRecheckTimer === timer && this.state === "running" && arm()),
        );
      }, this.options.healthCheckInterval);
      timer.unref();
      this.storeRecheckTimer = timer;
    };
    arm();
  }

  /** Commits a health mutation; never rejects: a failure is logged and answered as `failed`. */
  private commitHealth(id: string, mutation: Mutation): Promise<HealthCommit> {
    const committed = this.commit(() => mutation)
      .then(
        (change): HealthCommit => ({ outcome: "committed", change }),
        (err: unknown): HealthCommit => {
          // Removed meanwhile (perhaps not applied here yet): nothing left to reconcile.
          if (err instanceof RegistryError && err.code === "not_found") return { outcome: "gone" };
          this.logger.error({ err, instanceId: id }, "could not commit a health change");
          return { outcome: "failed", error: err instanceof RegistryError ? err : new RegistryError("unavailable", "the store could not persist the change") };
        },
      )
      .then((commit) => {
        this.pendingHealth.delete(id);
        // A session's opening or end that waited for this commit; after a failed one, an interval later, not at once.
        if (commit.outcome === "committed") this.reconcileSession(id);
        else if (commit.outcome === "failed") setTimeout(() => this.reconcileSession(id), this.options.healthCheckInterval).unref();
        return commit;
      });
    this.pendingHealth.set(id, committed);
    return committed;
  }

  /** A reported check's clock ran out (a missed ttl, no session open): a failed check. */
  private onReportedFailure(id: string, reason: string): void {
    const instance = this.index.get(id);
    if (!instance || this.state !== "running") return;
    this.onCheckResult(instance, { ok: false, reason }, false);
  }

  /**
   * A TTL instance's heartbeat: a passing check, and its next failure is due
   * a ttl from now. Answers the revision after it (a heartbeat that makes
   * the instance healthy again is a change of its own). FAILED_PRECONDITION
   * for an instance checked another way.
   */
  async heartbeat(id: string): Promise<number> {
    this.assertRunning();
    this.assertFresh();
    const instance = this.reportingInstance(id, "ttl");
    const relay = this.relay;
    if (relay && !this.probesHere(id)) {
      // Another replica keeps its clock and decides its health: it hears of this one through the store.
      try {
        await relay.heartbeat(id, healthCheckOf(instance).ttlMs);
      } catch (err) {
        throw new RegistryError("unavailable", "this replica could not pass the heartbeat on; retry", { cause: err });
      }
      return this.currentRevision;
    }
    this.reported.heartbeat(id);
    // The health commit it started, or one of the instance's already in flight (a concurrent beat's).
    const committed = this.onCheckResult(instance, { ok: true, status: 0 }, false);
    const commit = committed === undefined ? undefined : await committed;
    // That health change was not made: the caller hears so, as for any write, and beats again.
    if (commit?.outcome === "failed") throw commit.error;
    if (commit?.outcome === "gone") throw instanceNotFound(id, "is not registered");
    return commit?.change.revision ?? this.currentRevision;
  }

  /**
   * Opens a session for a SESSION instance: it is healthy from now (a
   * passing check, whatever the thresholds) while the session is open, and
   * turns UNHEALTHY at once when its last session ends, with `close`'s
   * reason. `onEnded` is told when the registry ends the session itself:
   * the instance was removed, or the registry is shutting down.
   * FAILED_PRECONDITION for an instance checked another way.
   */
  openSession(id: string, onEnded: (reason: RegistryError) => void): { readonly revision: number; close(reason: string): void } {
    this.assertRunning();
    // The server is going down (see releaseSessions): a session opened now would be cut and fail its instance.
    if (this.sessionsReleased) throw shuttingDown();
    this.assertFresh();
    const instance = this.reportingInstance(id, "session");
    let open = this.sessions.get(id);
    if (open && open.size >= MAX_SESSIONS_PER_INSTANCE) {
      throw new RegistryError(
        "resource_exhausted",
        `instance ${id} already holds ${MAX_SESSIONS_PER_INSTANCE} sessions on this replica; close one (one is enough, two while reconnecting)`,
      );
    }
    if (!open) this.sessions.set(id, (open = new Set()));
    const session = { onEnded };
    open.add(session);
    this.reported.hold(id);
    this.sessionEnds.delete(id);
    if (open.size === 1) this.relay?.sessionOpened(id);
    this.fire("healthCheckPassed", instance, undefined);
    if (!this.reconcileSession(id)) this.publishReport(instance, true);
    return { revision: this.currentRevision, close: (reason) => this.closeSession(id, session, reason) };
  }

  /**
   * Ends every session held here without judging their instances: this
   * server is going down, not they. Their clients reconnect (to another
   * replica, or to this one once it is back) within the grace a session
   * instance with no session gets.
   */
  releaseSessions(): void {
    this.sessionsReleased = true;
    this.endSessions(undefined, shuttingDown());
  }

  /**
   * A session ended; the last one of its instance (here and on every other
   * replica) makes it UNHEALTHY at once. The announcement to other replicas
   * is withdrawn once that is committed, so that the replica keeping the
   * instance's clock, seeing the withdrawal, finds it unhealthy already.
   */
  private closeSession(id: string, session: { onEnded: (reason: RegistryError) => void }, reason: string): void {
    const open = this.sessions.get(id);
    if (!open?.delete(session) || open.size > 0) return;
    this.sessions.delete(id);
    const instance = this.index.get(id);
    const relay = this.relay;
    if (!instance || this.state !== "running" || (relay?.sessionsElsewhere(id) ?? 0) > 0) {
      relay?.sessionClosed(id);
      return;
    }
    this.reported.release(id);
    this.sessionEnds.set(id, reason);
    this.fire("healthCheckFailed", instance, reason);
    const committed = this.reconcileSession(id);
    if (!committed) this.publishReport(instance, false, reason);
    // Not if a session of it opened meanwhile here: its announcement stands.
    if (relay) void (committed ?? Promise.resolve()).finally(() => this.sessions.has(id) || relay.sessionClosed(id));
  }

  /**
   * Brings a SESSION instance's health in line with its sessions: HEALTHY
   * while one is open, here or on another replica; UNHEALTHY, with why,
   * once its last one ended. A session opening or ending decides at once,
   * whatever the thresholds, and is never lost: when it cannot be committed
   * now (another health change of the instance is in flight, or the guard
   * suspects this registry's network) it is reconciled again when that is
   * over. Answers the commit it started, if any.
   */
  private reconcileSession(id: string): Promise<HealthCommit> | undefined {
    const instance = this.index.get(id);
    if (!instance || this.state !== "running" || healthCheckOf(instance).kind !== "session") return undefined;
    if (this.pendingHealth.has(id) || this.guard.suspected) return undefined;
    const now = this.options.now();
    const alive = this.sessionHeld(id);
    const ended = this.sessionEnds.get(id);
    let mutation: Mutation | undefined;
    if (alive) mutation = this.healthStatus.settle(instance, true, now);
    else if (ended !== undefined) mutation = this.healthStatus.settle(instance, false, now, ended);
    return mutation === undefined ? undefined : this.commitHealth(id, mutation);
  }

  /** A reported result that changed nothing, for watchers of every health check. */
  private publishReport(instance: Instance, passed: boolean, failureReason?: string): void {
    this.hub?.publishProbe({ instance, passed, revision: this.currentRevision, ...(failureReason ? { failureReason } : {}) });
  }

  /**
   * Another replica heard from an instance: a heartbeat, or a session opened
   * or gone there. Heartbeats are for the replica that keeps the instance's
   * clock. A session gone while the instance is still healthy ended with its
   * replica (a replica withdrawing one commits the failure first): every
   * replica that sees it commits the failure, as the one keeping the clock
   * may be the replica that died; the store writes a transition once.
   */
  private onLivenessReport(id: string, report: "heartbeat" | "session_opened" | "session_gone"): void {
    const instance = this.index.get(id);
    if (!instance || this.state !== "running") return;
    if (report === "heartbeat" && !this.probesHere(id)) return;
    if (report === "heartbeat") {
      if (healthCheckOf(instance).kind !== "ttl") return;
      this.reported.heartbeat(id);
      this.onCheckResult(instance, { ok: true, status: 0 }, false);
    } else if (report === "session_opened") {
      // Also this replica's own sessions, announced again after it rejoined: they may have been failed meanwhile.
      if (!this.sessionHeld(id)) return;
      this.reported.hold(id);
      this.sessionEnds.delete(id);
      this.reconcileSession(id);
    } else if (!this.sessionHeld(id)) {
      this.reported.release(id);
      if (instance.health === "healthy") {
        this.sessionEnds.set(id, "session lost: the registry replica holding it went away");
        this.reconcileSession(id);
      }
    }
  }

  /** The store's relay of liveness reports between replicas, if it is shared. */
  /** Whether a session holds `id` alive, on this replica or (by the relay) on another. */
  private sessionHeld(id: string): boolean {
    return this.sessions.has(id) || (this.relay?.sessionsElsewhere(id) ?? 0) > 0;
  }

  private get relay(): LivenessRelay | undefined {
    return this.store.plannedBy === "store" ? this.store.livenessRelay : undefined;
  }

  /** Ends the sessions held here for instance `id` (removed) or for all (shutdown), telling each why. */
  private endSessions(id: string | undefined, reason: RegistryError): void {
    const ids = id === undefined ? [...this.sessions.keys()] : [id];
    for (const each of ids) {
      const open = this.sessions.get(each);
      this.sessions.delete(each);
      if (id !== undefined) this.relay?.sessionClosed(each); // at shutdown, the replica's lease takes them all
      for (const session of open ?? []) {
        try {
          session.onEnded(reason);
        } catch (err) {
          this.logger.error({ err, instanceId: each }, "ending a session failed");
        }
      }
    }
  }

  /**
   * Ends every session held here, with `reason`, without judging their
   * instances: this replica can no longer vouch for them (other replicas see
   * its announcements go with its lease), and their clients move to one that
   * can (`registerSelf` does at once). Each instance's clock runs again as
   * for a session closed by its client, until a session opens elsewhere.
   */
  private moveSessionsAway(reason: RegistryError): void {
    for (const id of [...this.sessions.keys()]) {
      this.reported.release(id);
      this.endSessions(id, reason);
    }
  }

  /** The instance a heartbeat or session names, if it is checked `kind`'s way. */
  private reportingInstance(id: string, kind: HealthCheckKind): StoredInstance {
    const instance = this.index.get(id);
    if (!instance) throw instanceNotFound(id, "is not registered");
    const actual = healthCheckOf(instance).kind;
    if (actual !== kind) {
      const call = kind === "ttl" ? "Heartbeat is for TTL checks" : "KeepAlive is for SESSION checks";
      throw new RegistryError("failed_precondition", `instance ${id} has a ${actual.toUpperCase()} health check: ${call}`);
    }
    return instance;
  }

  /**
   * Commits the held mutations the guard no longer needs held: all of them
   * once the evidence rules a fault out, else those held for the guard's
   * whole window, an interval and a probe timeout (they can no longer be
   * part of a fault that begins within one).
   */
  private releaseHeld(now: number): void {
    if (this.held.size === 0) return;
    const all = this.guard.mayCommitHeld();
    for (const [id, held] of this.held) {
      if (!all && now - held.since < this.options.healthCheckInterval + this.options.healthCheckTTL) break;
      this.held.delete(id);
      if (this.index.get(id) && !this.pendingHealth.has(id)) this.commitHealth(id, held.mutation);
    }
  }

  /** Acts on the guard entering or leaving the suspected state. */
  private noteGuard(moved: "entered" | "left" | undefined, now: number): void {
    if (moved === undefined) return;
    const seen = this.guard.snapshot();
    const fields = { ...seen, thresholdPercent: this.options.massFailureThreshold, intervalMs: this.options.healthCheckInterval };
    if (moved === "entered") {
      // Failures held back are the fault's own: they are never committed.
      this.held.clear();
      this.guardTimer = setInterval(() => {
        const at = this.options.now();
        this.noteGuard(this.guard.judge(at), at);
      }, this.options.healthCheckInterval);
      this.guardTimer.unref();
      this.logger.error(
        fields,
        "most health probes failed at once, across service types: suspecting this registry's own network; holding every health state, removing nothing and reporting NOT_SERVING until they pass again",
      );
    } else {
      clearInterval(this.guardTimer);
      this.guardTimer = undefined;
      this.guardLeftAt = now;
      // What was seen during the fault is not trusted: thresholds count afresh.
      this.healthStatus.forgetAll();
      // Sessions that opened or ended meanwhile were held: they decide now.
      for (const id of [...this.sessions.keys(), ...this.sessionEnds.keys()]) this.reconcileSession(id);
      this.logger.warn(fields, "health probes pass again: no longer suspecting this registry's own network; health changes and expiry resume");
    }
    this.fire("massFailure", moved === "entered", seen);
  }

  /** Records whether a committed change left its type in panic, and logs the type entering or leaving it. */
  private notePanic(change: Change): void {
    const { serviceType } = change.instance;
    if (change.kind === "removed" && this.index.countOfType(serviceType) === 0) {
      this.panics.forget(serviceType);
      return;
    }
    const moved = this.panics.afterChange(change, this.index.inPanic(serviceType), this.options.now());
    if (moved !== undefined) this.logPanic(serviceType, moved === "entered", change.revision);
  }

  private logPanic(serviceType: string, entered: boolean, revision = this.currentRevision): void {
    const fields = { serviceType, revision, panicThresholdPercent: this.options.panicThreshold };
    if (entered) {
      this.logger.warn(fields, "service type in panic: too few of its instances are healthy; GetByType answers with all of them, flagged, and none expires");
    } else {
      this.logger.info(fields, "service type out of panic: GetByType answers with healthy instances again and expiry resumes");
    }
  }

  /** See `ExpiryClock`: paused while the type is in panic; counted from the later of its panic's end and the guard's. */
  private expiryFrom(serviceType: string): number | undefined {
    const fromPanic = this.panics.expiryFrom(serviceType);
    return fromPanic === undefined ? undefined : Math.max(fromPanic, this.guardLeftAt);
  }

  /** Probes an instance here: the scheduler and the guard's count. */
  private startProbing(instance: Instance, spreadOverInterval = false): void {
    // Its drain deadline is kept by the replica that probes it, with or without probing.
    if (instance.draining) this.drainDeadlines.arm(instance.id, instance.drainingSince);
    const check = healthCheckOf(instance);
    if (!isProbed(check.kind)) {
      const held = this.sessionHeld(instance.id);
      return this.reported.track(instance.id, check, held);
    }
    if (!this.scheduler) return;
    // Found unhealthy before (a restart, probes moving between replicas): its re-probes yield at once.
    this.scheduler.add(probeTarget(instance), { spreadOverInterval, failing: instance.health === "unhealthy" });
    if (!instance.draining) this.guard.track(instance.id, instance.serviceType);
  }

  /** Stops probing an instance here (removed, or now another replica's). */
  private stopProbing(id: string): void {
    this.drainDeadlines.disarm(id);
    this.reported.untrack(id);
    this.scheduler?.remove(id);
    this.healthStatus.forget(id);
    this.guard.untrack(id);
    this.held.delete(id);
  }

  /**
   * Data written before addresses were unique may hold an address twice: the
   * older instances there are removed (reason `replaced`), as a Register of
   * the address would have, so an address has one instance from the start.
   */
  private replaceShadowed(): void {
    const shadowed = this.index.shadowed();
    if (shadowed.length === 0) return;
    this.logger.warn({ count: shadowed.length }, "removing instances registered again at the same address before addresses were unique");
    for (const instance of shadowed) {
      this.commit(() => ({ op: "remove", id: instance.id, reason: "replaced", at: this.options.now() })).catch((err: unknown) => {
        if (err instanceof RegistryError && err.code === "not_found") return; // another replica removed it first
        this.logger.error({ err, instanceId: instance.id }, "could not remove an instance shadowed at its address");
      });
    }
  }

  /** The drain deadline of instance `id` passed: it is removed, unless it went meanwhile. */
  private expireDrain(id: string): void {
    if (this.state !== "running" || !this.index.get(id)?.draining) return;
    // A registry that suspects its own network removes nothing: try again an interval later.
    if (this.guard.suspected) return this.drainDeadlines.retryIn(id, this.options.healthCheckInterval);
    this.commit(() => ({ op: "remove", id, reason: "drain_expired", at: this.options.now() })).catch((err: unknown) => {
      if (err instanceof RegistryError && err.code === "not_found") return; // removed meanwhile
      this.logger.error({ err, instanceId: id }, "could not remove an instance at its drain deadline");
      // Tried again later: the instance must not drain forever because one commit failed.
      const instance = this.index.get(id);
      if (instance?.draining && this.probesHere(id)) this.drainDeadlines.retryIn(id, this.options.healthCheckInterval);
    });
  }

  /** Emits to each listener in turn; a throwing listener is logged, not propagated. */
  private fire<K extends keyof RegistryEvents>(event: K, ...args: RegistryEvents[K]): void {
    for (const listener of this.rawListeners(event) as ((...a: RegistryEvents[K]) => void)[]) {
      try {
        listener(...args);
      } catch (err) {
        this.logger.error({ err, event }, "registry event listener threw");
      }
    }
  }

  /** Resolves once `revision`, not yet applied, is (`commitBatch` checks that first). */
  private applied(revision: number): Promise<void> {
    return new Promise((resolve, reject) => this.revisionWaiters.push({ revision, resolve, reject }));
  }

  /** Fails every call waiting for its change to be applied (shutdown, lost store). */
  private rejectWaiters(error: Error): void {
    for (const waiter of this.revisionWaiters.splice(0)) waiter.reject(error);
  }

  private releaseWaiters(): void {
    if (this.revisionWaiters.length === 0) return;
    const still = this.revisionWaiters.filter((w) => w.revision > this.currentRevision);
    for (const w of this.revisionWaiters) if (w.revision <= this.currentRevision) w.resolve();
    this.revisionWaiters.length = 0;
    this.revisionWaiters.push(...still);
  }

  /** True while the store is reachable (always, for single-process stores). */
  get available(): boolean {
    return this.unavailableReason === undefined;
  }

  /**
   * Refuses to answer from a view known to be stale: while a shared store is
   * unreachable, reads and writes fail with UNAVAILABLE so clients go to
   * another replica instead of trusting this one.
   */
  private assertFresh(): void {
    if (this.unavailableReason !== undefined) {
      throw new RegistryError("unavailable", `this replica lost its store (${this.unavailableReason}); try another replica`);
    }
  }

  private setAvailability(available: boolean, reason: string): void {
    if (available === this.available) return;
    this.unavailableReason = available ? undefined : reason;
    clearTimeout(this.sessionMoveTimer);
    this.sessionMoveTimer = undefined;
    if (available) this.logger.warn("store reachable again; serving");
    else {
      this.logger.error({ reason }, "store unreachable; refusing reads and writes until it returns");
      this.hub?.endAll(new RegistryError("unavailable", `this replica lost its store (${reason}); resume on another replica`));
      // Not at once: a replica thawed from a freeze declares the loss and finds etcd again within moments, and
      // its sessions, still open, are announced again (ending them would only make their clients reconnect).
      const lost = new RegistryError("unavailable", `this replica lost its store (${reason}); open the session on another replica`);
      this.sessionMoveTimer = setTimeout(() => this.moveSessionsAway(lost), SESSION_MOVE_AFTER_MS);
      this.sessionMoveTimer.unref();
      this.rejectWaiters(
        new RegistryError("unavailable", "the change may have been committed, but this replica lost its store before applying it; check on another replica"),
      );
    }
    this.fire("availability", available, reason);
  }

  private probesHere(id: string): boolean {
    return this.store.plannedBy === "core" || (this.store.probeOwnership?.owns(id) ?? true);
  }

  /** After a membership change: probe exactly the instances this replica owns. */
  private rebalanceProbes(): void {
    // Without probing too: drain deadlines move with probe ownership.
    if (this.state !== "running") return;
    for (const instance of this.index.list("")) {
      if (this.probesHere(instance.id)) this.startProbing(instance);
      else this.stopProbing(instance.id);
    }
  }

  private assertRunning(): void {
    if (this.state === "running") return;
    if (this.state === "closing" || this.state === "closed") throw shuttingDown();
    throw new RegistryError("unavailable", "registry is not started");
  }
}

function probeTarget(instance: Instance): ProbeTarget {
  const target = { id: instance.id, host: instance.host, port: instance.port, path: instance.healthCheckPath };
  const check = instance.healthCheck;
  if (check === undefined || !isProbed(check.kind)) return target;
  return { ...target, kind: check.kind as "http" | "grpc" | "tcp", grpcService: check.grpcService, tls: check.tls, timeoutMs: check.timeoutMs };
}

/** A mutation a failing probe calls for: turning unhealthy, or expiry. */
function failureDriven(mutation: Mutation): boolean {
  return mutation.op === "remove" || (mutation.op === "setHealth" && mutation.health === "unhealthy");
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Answers a queued commit with its result. */
function settle(entry: QueuedCommit, result: Change | Error): void {
  if (result instanceof Error) entry.reject(result);
  else entry.resolve(result);
}

/** The fields a log line names an instance by: never its token or token hash. */
function logFields(instance: Instance, revision: number): { instanceId: string; serviceType: string; host: string; port: number; revision: number } {
  return { instanceId: instance.id, serviceType: instance.serviceType, host: instance.host, port: instance.port, revision };
}
