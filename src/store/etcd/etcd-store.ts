import { randomUUID } from "node:crypto";
import { ExponentialBackoff, handleWhen, noop, retry, type IBackoff, type IBackoffFactory } from "cockatiel";
import { Etcd3, GRPCDeadlineExceededError, isRecoverableError, type ComparatorBuilder, type IKeyValue, type IOptions, type Lease } from "etcd3";
import type { Logger } from "pino";
import { addressKey } from "../../registry/instance-address.js";
import { instanceNotFound, RegistryError } from "../../registry/registry-error.js";
import type { Change, RemovalReason, StoredInstance } from "../../registry/types.js";
import type { Mutation, SharedStore, StoreState } from "../../registry/registry-store.js";
import { DEFAULT_STALE_AFTER_MS, EtcdLiveness } from "./etcd-liveness.js";
import { EtcdMembers } from "./etcd-members.js";
import { MemberWatch } from "./member-watch.js";
import { EtcdLivenessKeys } from "./liveness-keys.js";
import { changeFromEvent, decodeInstance, encodeInstance } from "./instance-codec.js";
import { RendezvousOwnership } from "./rendezvous-ownership.js";
import { RejoinLoop, type MembershipEvent } from "./rejoin-loop.js";
import { StoreOpenError } from "../store-open-error.js";
import { settledWithin } from "../../util/settled-within.js";

/** Options of `EtcdStore`. */
export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. `["http://10.0.0.5:2379"]`. */
  readonly endpoints: readonly string[];
  /** Key prefix for everything this registry writes. Default `/service-registry/`. */
  readonly prefix?: string;
  readonly auth?: { readonly username: string; readonly password: string };
  readonly tls?: { readonly ca: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** TTL of this replica's membership lease, seconds. Default 5. */
  readonly memberTtlSeconds?: number;
  /**
   * Delays between attempts to rejoin the membership set after the lease was
   * lost. Default: decorrelated-jitter exponential backoff (docs/replicas.md).
   */
  readonly rejoinBackoff?: IBackoffFactory<unknown>;
  /** Told of every membership attempt, join, loss and failed rejoin (tests, metrics). Default: none. */
  readonly onMembership?: (event: MembershipEvent) => void;
  /** Deadline of each etcd call, ms. Default 3000. */
  readonly callTimeoutMs?: number;
  /** Names this replica in the membership set. Default: a random UUID. */
  readonly replicaId?: string;
  /** Where undecodable keys are reported. Default: silent. */
  readonly logger?: Logger;
  /**
   * etcd revisions replayed at start into the history window, so a watcher
   * can resume on a replica that started after its resume point. Default 10000.
   */
  readonly historyLimit?: number;
  /**
   * How this replica notices, with no client traffic, that it lost etcd: a
   * linearizable read of each member every `intervalMs` (default 500) with a
   * deadline of `deadlineMs` (default 1000); none succeeding for
   * `staleAfterMs` (default 3000) makes the store unavailable, as does a
   * broken watch that has not reconnected to another member by then.
   * `catchUpTimeoutMs` (default 5000) bounds each attempt to catch up with
   * etcd before serving again.
   */
  readonly liveness?: {
    readonly intervalMs?: number;
    readonly deadlineMs?: number;
    readonly staleAfterMs?: number;
    readonly catchUpTimeoutMs?: number;
  };
}

/** Could not reach etcd or read its data at start-up. */
export class EtcdOpenError extends StoreOpenError {
  override readonly name = "EtcdOpenError";
}

/** etcd revokes expired leases on a sweep this often (its lessor's fixed interval). */
const LEASE_SWEEP_MS = 500;
/** A shared fence lease with less than this left is not handed to another Register. */
const FENCE_MIN_LEFT_MS = 500;
/** A keepalive ping on an etcd connection this long after the last: above etcd's default minimum (5 s), which counts from each ping's arrival. */
const ETCD_KEEPALIVE_TIME_MS = 6000;
/** A ping unanswered this long ends the connection; etcd answers pings from its transport, not behind disk or raft. */
const ETCD_KEEPALIVE_TIMEOUT_MS = 4000;

/** A Register's fence lease: its id once granted, and when etcd expires it as this replica's clock reckons. */
interface FenceLease {
  readonly id: Promise<string>;
  expiresAt: number;
  /** etcd answered the grant. */
  granted: boolean;
}

interface EtcdEvent {
  type: "Put" | "Delete";
  kv: { key: Buffer; value: Buffer; mod_revision: string; create_revision: string };
  prev_kv?: { value: Buffer; mod_revision: string } | null;
}

/**
 * Shared store on etcd for several registry replicas (SPEC 4.4).
 *
 * - etcd's revision is the registry revision and the cluster id the epoch, so
 *   a watcher can resume on any replica. Every write under the prefix moves it
 *   (non-instance keys through `onProgress`), so caught-up replicas agree.
 * - Writes are transactions (guarded by mod_revision so a stale replica never
 *   overwrites or resurrects), acknowledged after etcd commits.
 * - One etcd watch per replica feeds every change, from every replica, to the
 *   core in revision order; a removal carries its reason in a side key written
 *   in the same transaction.
 * - No lease per instance: each replica's membership key has a lease, and
 *   each Register a short one that fences it by its caller's deadline
 *   (`fenceLease`); probing is split between live members by rendezvous hashing.
 */
export class EtcdStore implements SharedStore {
  readonly plannedBy = "store";
  readonly probeOwnership: RendezvousOwnership;
  readonly livenessRelay: EtcdLivenessKeys;
  private readonly prefix: string;
  private readonly callTimeoutMs: number;
  /** No member answering for this long, or the watch down for this long, means etcd is lost. */
  private readonly staleAfterMs: number;
  /** Deadline of each liveness check (and of the catch-up's marker put), ms. */
  private readonly checkDeadlineMs: number;
  /** Fence leases being granted or granted, by the whole second they must end by (see `fenceLease`). */
  private readonly fenceLeases = new Map<number, FenceLease>();
  private readonly client: Etcd3;
  private readonly members: EtcdMembers;
  private readonly watch: MemberWatch;
  private lease: Lease | undefined;
  /** A renewal of the membership lease through the members that answer, while one is in flight. */
  private renewalInFlight: Promise<unknown> | undefined;
  /** Calls waiting in `resentOnTakeOut`, each told to go again at the next take-out. */
  private readonly resendOnTakeOut = new Set<() => void>();
  /** Renewals scheduled after a member was taken out (`renewLeaseMeanwhile`). */
  private readonly renewalTimers: NodeJS.Timeout[] = [];
  private readonly rejoin: RejoinLoop;
  /**
   * Where changes (and progress marks, as bare revisions) go: buffered during
   * the start-up replay, then the core's change feed and progress listener.
   */
  private deliver: (item: Change | number) => void = () => {};
  private progressListener: ((revision: number) => void) | undefined;
  /** The revision that ends the start-up replay (our own membership put). */
  private replayEnd: { revision: number; done: () => void } | undefined;
  /** A client of one etcd member, with this store's connection settings. */
  private readonly clientOf: (endpoint: string) => Etcd3;
  private readonly availabilityListeners: ((available: boolean, reason: string) => void)[] = [];
  private closed = false;
  private liveness: EtcdLiveness | undefined;
  /** What listeners were last told: unavailable carries its reason. */
  private reported: { available: true } | { available: false; reason: string } = { available: true };
  /** Set while etcd3 reports the watch stream down (between 'disconnected' and 'connected'). */
  private watchDown = false;
  /** With several members: counts the store lost if the broken watch has not reconnected elsewhere by then. */
  private watchDownTimer: NodeJS.Timeout | undefined;
  /** Set when the watch was cancelled for good (e.g. compacted): only a restart recovers. */
  private fatal: string | undefined;
  /** Bumped at every loss: a catch-up that started before one does not make the store available. */
  private lossGeneration = 0;
  private catchingUp = false;
  /** Highest etcd revision the watch has delivered: every change under the prefix up to it has been applied. */
  private watchedRevision = 0;
  private readonly watchedWaiters: { revision: number; resolve: () => void; reject: (err: Error) => void }[] = [];

  constructor(private readonly options: EtcdStoreOptions) {
    this.prefix = options.prefix ?? "/service-registry/";
    this.probeOwnership = new RendezvousOwnership(options.replicaId ?? randomUUID());
    const timeout = options.callTimeoutMs ?? 3000;
    this.callTimeoutMs = timeout;
    this.staleAfterMs = options.liveness?.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    const watchBackoff = (): IBackoff<unknown> =>
      // etcd3's default watch backoff grows to 30 s; a replica should be back
      // within a couple of seconds of etcd returning.
      // (etcd3 calls `.next()` on it, as on its own default; its typings predate cockatiel 3.)
      new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as IBackoff<unknown>;
    const connection: Omit<IOptions, "hosts"> = {
      dialTimeout: timeout,
      // Unary calls only: a deadline on the watch and lease keep-alive streams
      // ended them every `timeout` ms, and each end flapped the replica to
      // unavailable (its watchers cut with UNAVAILABLE) until it reconnected.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
      // gRPC's default 4 MiB cap on a received message would refuse the start-up read of every
      // instance (and a watch response replaying many changes) once a fleet passes ~10,000
      // instances: etcd's answers are as large as the data this registry put there.
      //
      // Keepalive pings: a member that freezes (SIGSTOP, a paused VM) keeps its
      // connection open and silent, and nothing else ever ends it. Behind one
      // load-balanced address the replica would stay on that member until it
      // thaws; with several addresses, streams placed on it before it froze
      // (a moved-away watch, a lease keep-alive) would wait as long. An
      // unanswered ping ends the connection, and grpc-js reconnects (through
      // the balancer, to a member that answers). Pings only while a call is
      // open (etcd refuses them otherwise), and no more often than etcd's
      // --grpc-keepalive-min-time allows (on a quiet connection it answers
      // pings that come sooner by ending the connection).
      grpcOptions: {
        "grpc.max_receive_message_length": -1,
        "grpc.keepalive_time_ms": ETCD_KEEPALIVE_TIME_MS,
        "grpc.keepalive_timeout_ms": ETCD_KEEPALIVE_TIMEOUT_MS,
      },
    };
    if (options.auth) connection.auth = { ...options.auth };
    if (options.tls) {
      connection.credentials = {
        rootCertificate: options.tls.ca,
        ...(options.tls.key ? { privateKey: options.tls.key } : {}),
        ...(options.tls.cert ? { certChain: options.tls.cert } : {}),
      };
    }
    this.clientOf = (endpoint) =>
      new Etcd3({ ...connection, hosts: [endpoint], faultHandling: { host: () => noop, global: noop, watchBackoff: watchBackoff() } });
    const liveness = options.liveness ?? {};
    this.checkDeadlineMs = liveness.deadlineMs ?? 1000;
    this.members = new EtcdMembers({
      endpoints: options.endpoints,
      clientOf: this.clientOf,
      checkKey: this.syncKey,
      intervalMs: liveness.intervalMs ?? 500,
      deadlineMs: this.checkDeadlineMs,
      onChange: (endpoint, answering) => {
        // With one endpoint there is no other member to turn to: the loss of etcd, reported as such, says it all.
        if (options.endpoints.length > 1) {
          if (answering) this.options.logger?.info({ endpoint }, "etcd member answers again; calls may go to it");
          else this.options.logger?.warn({ endpoint }, "etcd member stopped answering; calls and the watch go to members that answer");
        }
        this.keepWatchOnAnsweringMember();
      },
      onCheckAnswered: () => this.liveness?.answered(),
      onCheckFailed: (reason) => this.liveness?.failed(reason),
      onTakenOut: () => {
        this.renewLeaseMeanwhile();
        this.resendPendingCalls();
      },
    });
    this.watch = new MemberWatch({
      prefix: this.prefix,
      clientOf: this.clientOf,
      cancelTimeoutMs: timeout,
      logger: options.logger,
      listener: {
        data: (events) => this.onWatchData(events as EtcdEvent[]),
        disconnected: () => {
          this.watchDown = true;
          const lost = "etcd unreachable (watch stream broken)";
          // With one endpoint the break is etcd's. With several it is one member's (killed, restarting):
          // the watch moves to another and resumes where it stopped, as when its member hangs, and
          // meanwhile the view is no staler than the liveness window allows a silent partition.
          if (this.options.endpoints.length === 1) this.markLost(lost);
          else this.watchDownTimer ??= setTimeout(() => this.watchDown && this.markLost(lost), this.staleAfterMs).unref();
          // etcd3 would reconnect it to the same member, which may be gone for good (killed, restarting).
          this.moveWatch();
        },
        connected: () => {
          this.watchDown = false;
          clearTimeout(this.watchDownTimer);
          this.watchDownTimer = undefined;
          this.tryRecover();
        },
        failed: (err) => {
          this.fatal = `etcd watch failed (${err.message}); restart this replica`;
          this.markLost(this.fatal);
        },
      },
    });
    this.client = new Etcd3({
      ...connection,
      hosts: [...options.endpoints],
      faultHandling: {
        watchBackoff: watchBackoff(),
        // No circuit breaker of etcd3's (it opens for 5 s after three failed
        // calls, and re-tests a frozen member with a real call that waits out
        // its deadline): a member is taken out of the choice while it does not
        // answer its own checks, and back once it does (EtcdMembers).
        host: (endpoint) => this.members.policyFor(endpoint),
        // Another member on a failed call, as etcd3 does by default, but not
        // after a missed deadline. A call with a deadline of its own (a
        // Register's, the fence lease's) would fail at once on the next member
        // and make etcd3 drop that member's connections; any other would wait
        // a whole call timeout again, while the member that hung is out of the
        // choice within a second (EtcdMembers) for the calls that follow.
        global: retry(handleWhen((err) => isRecoverableError(err) && !(err instanceof GRPCDeadlineExceededError)), { maxAttempts: 3 }),
      },
    });
    this.livenessRelay = new EtcdLivenessKeys(this.client, this.prefix, this.probeOwnership.self, () => this.lease, options.logger);
    this.rejoin = new RejoinLoop({
      attempt: () => this.join(),
      ...(options.rejoinBackoff ? { backoff: options.rejoinBackoff } : {}),
      onFailure: (error, attempt, retryInMs) => {
        this.options.logger?.debug({ err: error, attempt, retryInMs }, "rejoining the membership set failed; retrying");
        this.tell({ kind: "failed", attempt, retryInMs, error });
      },
    });
  }

  private get instancesPrefix(): string {
    return `${this.prefix}instances/`;
  }
  private get membersPrefix(): string {
    return `${this.prefix}members/`;
  }
  /**
   * Address records: `addresses/<type> <host> <port>` (see `addressKey`) holds
   * the id of the instance registered at that address, so that replicas
   * agree on which one holds it: a Register compares the record's revision
   * in its transaction, and so is the only one to take the address.
   */
  private addressKeyOf(i: { serviceType: string; host: string; port: number }): string {
    return `${this.prefix}addresses/${addressKey(i.serviceType, i.host, i.port)}`;
  }

  private get removalsPrefix(): string {
    return `${this.prefix}removals/`;
  }

  async open(onChange: (change: Change) => void): Promise<StoreState> {
    let range;
    try {
      // A member that does not answer is out of the choice before the first read.
      await this.members.start();
      range = await this.client.getAll().prefix(this.instancesPrefix).exec();
    } catch (err) {
      this.members.close();
      this.client.close();
      throw new EtcdOpenError(`cannot reach etcd at ${this.options.endpoints.join(",")}: ${(err as Error).message}`);
    }
    const revision = Number(range.header.revision);
    const instances = range.kvs.flatMap((kv) => {
      const decoded = this.decode(kv.key, () => decodeInstance(kv.value, Number(kv.mod_revision)).instance);
      return decoded ? [decoded] : [];
    });
    const members = await this.client.getAll().prefix(this.membersPrefix).keys();
    this.probeOwnership.setMembers(members.map((k) => k.slice(this.membersPrefix.length)));
    await this.livenessRelay.load();
    const joinedAt = await this.join();

    // Replay recent etcd history into the window (what etcd has not compacted),
    // so a watcher resuming here from before this replica started is served.
    // Our own membership put (joinedAt) marks the end of the replay; changes
    // after the loaded revision are held until the core has loaded the state.
    const backfillFrom = Math.max(1, revision - (this.options.historyLimit ?? 10_000) + 1);
    const from = backfillFrom <= revision && (await this.retained(backfillFrom)) ? backfillFrom : revision + 1;
    const history: Change[] = [];
    const early: (Change | number)[] = [];
    this.deliver = (item) => {
      if (typeof item === "number") {
        if (item > revision) early.push(item); // progress up to `revision` is the loaded state itself
      } else (item.revision <= revision ? history : early).push(item);
    };
    const replayed = new Promise<void>((resolve) => (this.replayEnd = { revision: joinedAt, done: resolve }));

    this.watch.start(from, this.members.pickAnswering() ?? (this.options.endpoints[0] as string));

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EtcdOpenError("etcd history replay did not finish within 15 s")), 15_000);
    });
    try {
      await Promise.race([replayed, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    this.startLiveness();
    // The core applies changes only after open() resolved and it loaded the state.
    const forward = (item: Change | number): void => {
      if (typeof item === "number") this.progressListener?.(item);
      else onChange(item);
    };
    setImmediate(() => {
      for (const item of early) forward(item);
      this.deliver = forward;
    });
    return { epoch: range.header.cluster_id, revision, instances, history, historyFloor: from - 1 };
  }

  /**
   * Moves the watch to a member that answers when the one it is on does not
   * (EtcdMembers' checks): a frozen member's watch stream goes quiet with its
   * connection open, and every write this replica acknowledges waits for the
   * watch to deliver it.
   */
  private keepWatchOnAnsweringMember(): void {
    const endpoint = this.watch.endpoint;
    if (endpoint !== undefined && !this.members.isAnswering(endpoint)) this.moveWatch();
  }

  /** Moves the watch to another member that answers, if there is one. */
  private moveWatch(): void {
    const endpoint = this.watch.endpoint;
    if (this.closed || endpoint === undefined) return;
    const next = this.members.pickAnswering(endpoint);
    if (next !== undefined) this.watch.moveTo(next, this.watchedRevision); // none answers: the liveness check reports the loss
  }

  /**
   * A member was just taken out of the choice: calls still waiting may be
   * waiting on it, and would wait out their deadline. Those sent through
   * `resentOnTakeOut` go again, to a member that answers; a fence lease
   * still being granted is forgotten, so they and later Registers ask anew.
   */
  private resendPendingCalls(): void {
    for (const [second, fence] of this.fenceLeases) if (!fence.granted) this.fenceLeases.delete(second);
    for (const resend of [...this.resendOnTakeOut]) resend();
  }

  /**
   * Runs an etcd call that is safe to send twice, and sends it again when a
   * member is taken out while it waits (`resendPendingCalls`: any member, as
   * which one holds the call is not known), at most once per other member.
   * An attempt left behind is ended by its deadline, its answer unheard.
   * Safe to send twice: a read; a fence lease grant (a lease nobody uses
   * expires); a transaction whose guard fails once an earlier attempt has
   * committed, and whose caller then finds that attempt's result (see
   * `register` and `commitOnce`).
   */
  private async resentOnTakeOut<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const pending = call();
      if (attempt >= this.options.endpoints.length - 1) return pending;
      // A listener removed once the call is answered: a promise kept for the
      // next take-out would hold every answer raced against it until then.
      let resend = (): void => {};
      const takenOut = new Promise<undefined>((resolve) => (resend = () => resolve(undefined)));
      this.resendOnTakeOut.add(resend);
      try {
        const answered = await Promise.race([pending.then((value) => ({ value })), takenOut]);
        if (answered) return answered.value;
      } finally {
        this.resendOnTakeOut.delete(resend);
      }
      pending.catch(() => undefined);
    }
  }

  /** One key, read linearizably, sent again at a take-out (`resentOnTakeOut`). */
  private async read(key: string): Promise<IKeyValue | undefined> {
    return (await this.resentOnTakeOut(() => this.client.get(key).exec())).kvs[0];
  }

  /**
   * Renews the membership lease through the members that answer, now and
   * every third of its TTL for one TTL: its keep-alive stream may be on the
   * member just taken out, and etcd3 notices a quiet stream (and opens a new
   * one, on a member that answers) only a TTL after its last answer, when
   * etcd may have expired the lease, and with it this replica's membership
   * and session keys. One renewal at a time, each given the call timeout
   * (its stream has no deadline, and one sent while etcd has no leader may
   * never be answered).
   */
  private renewLeaseMeanwhile(): void {
    const lease = this.lease;
    if (!lease || this.closed) return;
    for (const timer of this.renewalTimers.splice(0)) clearTimeout(timer);
    const ttlMs = (this.options.memberTtlSeconds ?? 5) * 1000;
    for (const at of [0, ttlMs / 3, (2 * ttlMs) / 3, ttlMs]) {
      const renew = (): void => {
        if (this.closed || this.lease !== lease || this.renewalInFlight) return;
        // Sent again at a later take-out (a renewal is safe to send twice): the pool may have put it
        // on a member that is silent but not yet out, and while it waits no other renewal is sent.
        // With a deadline: each attempt opens a stream of its own, which one left on a silent member would keep.
        const renewal = this.resentOnTakeOut(() => lease.keepaliveOnce({ deadline: Date.now() + this.callTimeoutMs })).catch(() => undefined);
        this.renewalInFlight = settledWithin(renewal, this.callTimeoutMs).then(() => (this.renewalInFlight = undefined));
      };
      this.renewalTimers.push(setTimeout(renew, at).unref());
    }
  }

  /** True when etcd still holds history at `revision` (it was not compacted away). */
  private async retained(revision: number): Promise<boolean> {
    try {
      await this.client.get(this.instancesPrefix).revision(revision).exec();
      return true;
    } catch (err) {
      if (/compacted/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  onProgress(listener: (revision: number) => void): void {
    this.progressListener = listener;
  }

  onAvailabilityChange(listener: (available: boolean, reason: string) => void): void {
    this.availabilityListeners.push(listener);
    // Lost before the listener was added (during open): say so now.
    if (!this.reported.available) listener(false, this.reported.reason);
  }

  /** Commits each mutation in a transaction of its own, all sent at once: etcd orders them. */
  commitBatch(mutations: readonly Mutation[]): Promise<Change>[] {
    return mutations.map((m) => this.commit(m));
  }

  async commit(mutation: Mutation): Promise<Change> {
    try {
      return await this.commitOnce(mutation);
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      throw new RegistryError("unavailable", "etcd did not commit the change; retry", { cause: err });
    }
  }

  async lookup(id: string): Promise<number | undefined> {
    // Linearizable (etcd3's default): sees every write etcd acknowledged before the call.
    const res = await this.client.get(this.instancesPrefix + id).exec();
    const kv = res.kvs[0];
    return kv ? Number(kv.mod_revision) : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.rejoin.close();
    this.livenessRelay.stop();
    this.members.close();
    for (const timer of this.renewalTimers.splice(0)) clearTimeout(timer);
    this.liveness?.stop();
    clearTimeout(this.watchDownTimer);
    for (const w of this.watchedWaiters.splice(0)) w.reject(new Error("store closed"));
    // Each bounded: cancelling a watch waits for etcd's answer on the stream, with no deadline of
    // its own, and a replica cut off from etcd (a blackholed link) would never stop.
    await this.watch.close();
    if (this.lease) await settledWithin(this.lease.revoke(), this.callTimeoutMs); // hand our probes to the others at once
    this.client.close();
  }

  private async commitOnce(mutation: Mutation): Promise<Change> {
    if (mutation.op === "register") return this.register(mutation);
    // Read-modify-write guarded by mod_revision: retried when another replica
    // changed the instance in between.
    for (let attempt = 0; attempt < 5; attempt++) {
      const key = this.instancesPrefix + mutation.id;
      const kv = await this.read(key);
      if (!kv) throw instanceNotFound(mutation.id);
      const { instance } = decodeInstance(kv.value, Number(kv.mod_revision));
      // Sent twice (`resentOnTakeOut`), the later attempt fails its guard, and the loop finds the change made.
      const putUnlessChanged = (next: string) =>
        this.resentOnTakeOut(() => this.client.if(key, "Mod", "==", kv.mod_revision).then(this.client.put(key).value(next)).commit());
      if (mutation.op === "remove") {
        const reasonKey = this.removalsPrefix + mutation.id;
        // The address record goes too, when it is this instance's.
        const record = this.addressKeyOf(instance);
        const address = await this.read(record);
        const ownsRecord = address?.value.toString("utf8") === mutation.id;
        const res = await this.resentOnTakeOut(() => {
          const guard = this.client.if(key, "Mod", "==", kv.mod_revision);
          const ops = [this.client.delete().key(key), this.client.put(reasonKey).value(mutation.reason)];
          if (ownsRecord) {
            guard.and(record, "Mod", "==", address.mod_revision);
            ops.push(this.client.delete().key(record));
          }
          return guard.then(...ops).else(this.client.get(reasonKey)).commit();
        });
        // Sent twice (`resentOnTakeOut`), an earlier attempt may have removed
        // it: its reason key, which no answer came back to delete, says so
        // (or another replica's removal, just committed: either way it is gone).
        const earlier = res.succeeded ? undefined : res.responses[0]?.response_range?.kvs[0];
        if (!res.succeeded && !earlier) continue;
        this.forgetRemovalReason(reasonKey);
        return earlier
          ? { kind: "removed", revision: Number(earlier.mod_revision), instance, reason: earlier.value.toString("utf8") as RemovalReason }
          : { kind: "removed", revision: Number(res.header.revision), instance, reason: mutation.reason };
      }
      if (mutation.op === "drain") {
        // Draining is one way: a drain of a draining instance changes nothing (nor its deadline).
        if (instance.draining) return { kind: "draining", revision: Number(kv.mod_revision), instance };
        const next: Omit<StoredInstance, "revision"> = { ...instance, draining: true, drainingSince: mutation.at, updatedAt: mutation.at };
        const res = await putUnlessChanged(encodeInstance(next));
        if (!res.succeeded) continue;
        const revision = Number(res.header.revision);
        return { kind: "draining", revision, instance: { ...next, revision } };
      }
      // Already so (another replica committed the same transition first): nothing to write.
      if (instance.health === mutation.health) return { kind: "health", revision: Number(kv.mod_revision), instance };
      const next: Omit<StoredInstance, "revision"> = { ...instance, health: mutation.health, updatedAt: mutation.at };
      const res = await putUnlessChanged(encodeInstance(next, mutation.failureReason));
      if (!res.succeeded) continue;
      const revision = Number(res.header.revision);
      const updated = { ...next, revision };
      return mutation.failureReason === undefined
        ? { kind: "health", revision, instance: updated }
        : { kind: "health", revision, instance: updated, failureReason: mutation.failureReason };
    }
    throw new RegistryError("unavailable", "the instance kept changing; retry");
  }

  /**
   * Commits a registration, replacing the instance that holds its address.
   * The address record decides, across replicas, who holds an address: the
   * old instance's removal (reason `replaced`) and the hand-over of the
   * record to the new id are one transaction, guarded by the record's and
   * the old instance's revisions; the registration follows in a second,
   * which commits only while the record still names the new id. Watchers
   * see the removal, then the registration, each at its own revision (one
   * transaction would give both one revision, and a watch cut between them
   * could not resume). Should the second not commit (the caller gave up, or
   * another Register took the address meanwhile), the old instance is gone
   * and the caller is told to retry: the address is free for it. Both are
   * fenced by the caller's deadline (`fenceLease`), so neither commits once
   * the caller was told the Register failed.
   */
  private async register(mutation: Extract<Mutation, { op: "register" }>): Promise<Change> {
    const key = this.instancesPrefix + mutation.instance.id;
    const notAfter = Math.min(mutation.notAfter ?? Infinity, Date.now() + this.callTimeoutMs);
    const record = this.addressKeyOf(mutation.instance);
    const value = encodeInstance(mutation.instance);
    for (let attempt = 0; attempt < 5; attempt++) {
      const address = await this.read(record);
      // No record: an instance registered before address records existed may hold it (the core's table says which).
      const holderId = address ? address.value.toString("utf8") : mutation.replaces;
      const holder = holderId === undefined || holderId === mutation.instance.id
        ? undefined
        : await this.read(this.instancesPrefix + holderId);
      // Both transactions are fenced: neither may commit once the caller was told the Register failed.
      const fence = await this.resentOnTakeOut(() => this.fenceLease(notAfter));
      if (holder && holderId !== undefined) {
        const reasonKey = this.removalsPrefix + holderId;
        // Sent twice, the later finds the record moved and fails; the loop then reads the record naming this instance.
        const handOver = await this.resentOnTakeOut(() =>
          (address ? this.client.if(record, "Mod", "==", address.mod_revision) : this.client.if(record, "Create", "==", 0))
            .and(this.instancesPrefix + holderId, "Mod", "==", holder.mod_revision)
            .then(
              this.client.delete().key(this.instancesPrefix + holderId),
              this.client.put(reasonKey).value("replaced"),
              this.client.put(record).value(mutation.instance.id),
              this.client.put(this.fenceKey).value("").lease(fence),
            )
            .options({ deadline: notAfter })
            .commit(),
        );
        // An earlier attempt that committed wrote it too.
        this.forgetRemovalReason(reasonKey);
        if (!handOver.succeeded) continue;
      }
      // The address is ours when the record names us (just handed over) or
      // is unchanged since read with no live holder (none, or a stale id).
      // The claim marker, under the fence lease, is what makes the claim safe
      // to send twice: an attempt held up in the network must fail once
      // another committed, even if the instance and its address record are
      // removed meanwhile (which would make the guards on those true again).
      const marker = this.claimMarkerKey(mutation.instance.id);
      const claim = (): ComparatorBuilder =>
        (holder
          ? this.client.if(key, "Create", "==", 0).and(record, "Value", "==", mutation.instance.id)
          : address
            ? this.client.if(key, "Create", "==", 0).and(record, "Mod", "==", address.mod_revision)
            : this.client.if(key, "Create", "==", 0).and(record, "Create", "==", 0)
        ).and(marker, "Create", "==", 0);
      const res = await this.resentOnTakeOut(() =>
        claim()
          .then(
            this.client.put(key).value(value),
            this.client.put(record).value(mutation.instance.id),
            this.client.put(marker).value("").lease(fence),
          )
          .else(this.client.get(key), this.client.get(marker))
          .options({ deadline: notAfter })
          .commit(),
      );
      if (res.succeeded) {
        const revision = Number(res.header.revision);
        return { kind: "registered", revision, instance: { ...mutation.instance, revision } };
      }
      // etcd3 resends a transaction whose answer was lost, and this store
      // one pending at a take-out: an earlier attempt may have committed.
      // The instance there is ours when it carries our token (a probe may
      // have changed its health since); our marker without it means ours was
      // registered and then replaced at its address before we heard back.
      // Either way the registration stands, at the revision it committed.
      const [existing, committed] = [0, 1].map((i) => res.responses[i]?.response_range?.kvs[0]);
      if (existing && decodeInstance(existing.value, Number(existing.mod_revision)).instance.tokenHash !== mutation.instance.tokenHash) {
        throw new RegistryError("unavailable", "instance id collision; retry");
      }
      const earlier = existing ?? committed;
      if (earlier) {
        const revision = Number(earlier.create_revision);
        return { kind: "registered", revision, instance: { ...mutation.instance, revision } };
      }
      // Another Register took the address between our reads and our commit: look again.
    }
    throw new RegistryError("unavailable", "the address kept changing hands; retry");
  }

  /**
   * A lease that etcd has revoked by the time the caller of a Register stops
   * waiting, for the Register to put the fence key under in its transaction.
   * etcd refuses, whole, a transaction naming a lease it no longer holds, so
   * a Register held up in the network (a partition that heals later) cannot
   * commit once its caller was told it failed and may register again.
   *
   * etcd counts a lease's TTL in whole seconds from when it granted it, and
   * revokes it on a sweep that comes up to `LEASE_SWEEP_MS` after it
   * expires: the lease is asked to end by the last whole second that leaves
   * that sweep room before the deadline. Registers whose deadlines share that
   * second share one lease, so a stream of Registers costs etcd about one
   * grant a second, not one each. A deadline too near for that (etcd also
   * raises a TTL to its minimum) gets the shortest lease: such a Register can
   * commit that much after its deadline (docs/replicas.md says how much).
   * A hand-over puts the one shared fence key (only the last lease to
   * expire deletes it); a registration puts its own claim marker, which its
   * lease deletes.
   */
  private fenceLease(notAfter: number): Promise<string> {
    const now = Date.now();
    if (notAfter - now <= 0) return Promise.reject(new RegistryError("unavailable", "the call's deadline passed before etcd was asked"));
    const second = Math.floor((notAfter - LEASE_SWEEP_MS) / 1000);
    let fence = this.fenceLeases.get(second);
    // A shared lease about to expire would refuse the transaction put under it: a fresh one then.
    if (!fence || fence.expiresAt - now < FENCE_MIN_LEFT_MS) {
      const ttl = Math.max(1, Math.floor((second * 1000 - now) / 1000));
      const granted = this.client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 }, { deadline: notAfter });
      // Until etcd answers, the TTL asked for; then the one etcd granted.
      const lease: FenceLease = { id: granted.then((r) => r.ID), expiresAt: now + ttl * 1000, granted: false };
      fence = lease;
      this.fenceLeases.set(second, lease);
      const forget = (): void => void (this.fenceLeases.get(second) === lease && this.fenceLeases.delete(second));
      granted.then((r) => {
        lease.granted = true;
        lease.expiresAt = now + Number(r.TTL) * 1000;
        setTimeout(forget, lease.expiresAt - Date.now()).unref();
      }, forget);
    }
    return fence.id.then((id) => {
      if (Date.now() >= notAfter) throw new RegistryError("unavailable", "the call's deadline passed while etcd granted the fence lease");
      return id;
    });
  }

  /**
   * Turns one watch response into registry changes and membership updates, in
   * revision order. When the response ends past its last instance change
   * (membership, removal-reason or sync-marker keys), a progress mark at its
   * last revision follows the changes: every replica's revision is then the
   * last revision under the prefix, whether it ran all along or started at
   * etcd's header revision.
   */
  private onWatchData(events: EtcdEvent[]): void {
    this.deliverEvents(events);
    const last = events.at(-1);
    if (last) this.watched(Number(last.kv.mod_revision));
  }

  private deliverEvents(events: EtcdEvent[]): void {
    const reasons = new Map<string, RemovalReason>();
    let membersChanged = false;
    for (const e of events) {
      const key = e.kv.key.toString("utf8");
      if (this.livenessRelay.apply(e.type, key)) continue;
      if (e.type === "Put" && key.startsWith(this.removalsPrefix)) {
        reasons.set(`${e.kv.mod_revision}/${key.slice(this.removalsPrefix.length)}`, e.kv.value.toString() as RemovalReason);
      } else if (key.startsWith(this.membersPrefix)) {
        membersChanged = true;
      }
    }
    let delivered = 0;
    for (const e of events) {
      const key = e.kv.key.toString("utf8");
      if (!key.startsWith(this.instancesPrefix)) continue;
      const id = key.slice(this.instancesPrefix.length);
      const change = this.decode(e.kv.key, () =>
        changeFromEvent(e.type, e.kv, e.prev_kv ?? undefined, reasons.get(`${e.kv.mod_revision}/${id}`)),
      );
      if (change) {
        this.deliver(change);
        delivered = change.revision;
        if (change.kind === "removed") this.livenessRelay.forget(id, this.probeOwnership.owns(id));
      }
    }
    const last = events.at(-1);
    if (last && Number(last.kv.mod_revision) > delivered) this.deliver(Number(last.kv.mod_revision));
    if (membersChanged) void this.refreshMembers();
    const end = this.replayEnd;
    if (end && events.some((e) => Number(e.kv.mod_revision) >= end.revision)) {
      this.replayEnd = undefined;
      end.done();
    }
  }

  /**
   * Decodes one stored value; a value this build cannot read (written by hand
   * or by another version) is logged and skipped instead of crashing every
   * replica that watches it.
   */
  private decode<T>(key: Buffer, decode: () => T): T | undefined {
    try {
      return decode();
    } catch (err) {
      this.options.logger?.error({ err, key: key.toString("utf8").slice(0, 200) }, "skipping an undecodable etcd value");
      return undefined;
    }
  }

  private async refreshMembers(): Promise<void> {
    try {
      const keys = await this.client.getAll().prefix(this.membersPrefix).keys();
      this.probeOwnership.setMembers(keys.map((k) => k.slice(this.membersPrefix.length)));
    } catch {
      // The next membership event or reconnect refreshes it.
    }
  }

  /**
   * Announces this replica under a fresh lease and returns the revision of
   * the membership put. A failed attempt releases its lease (keepalive timers
   * and stream) and throws; only a lease whose put succeeded listens for
   * `lost`, and a loss only wakes the one rejoin loop.
   */
  private async join(): Promise<number> {
    this.lease?.release();
    const lease = this.client.lease(this.options.memberTtlSeconds ?? 5);
    this.lease = lease;
    this.tell({ kind: "attempt" });
    try {
      const put = await lease.put(this.membersPrefix + this.probeOwnership.self).value(JSON.stringify({ since: Date.now() }));
      if (this.closed) throw new Error("the store was closed while joining");
      if (lease.revoked()) throw new Error("the membership lease was lost while joining");
      lease.on("lost", (err: Error) => this.rejoinLater(lease, err));
      this.livenessRelay.reannounce();
      await this.refreshMembers();
      const revision = Number(put.header.revision);
      this.tell({ kind: "joined", revision });
      return revision;
    } catch (err) {
      lease.release();
      if (this.lease === lease) this.lease = undefined;
      throw err;
    }
  }

  /** The current lease was lost (etcd unreachable for more than 2×TTL, or it expired): rejoin, once. */
  private rejoinLater(lease: Lease, error: Error): void {
    if (this.closed || lease !== this.lease) return;
    this.options.logger?.warn({ err: error }, "membership lease lost; rejoining");
    this.tell({ kind: "lost", error });
    this.rejoin.trigger();
  }

  private tell(event: MembershipEvent): void {
    try {
      this.options.onMembership?.(event);
    } catch {
      // An observer's fault must not break membership.
    }
  }

  /** Written by every hand-over of an address under a lease that ends at its caller's deadline (see `fenceLease`). */
  private get fenceKey(): string {
    return `${this.prefix}fence`;
  }

  /** A removal's reason key travels only with the deletion's watch event: delete it after, best effort. */
  private forgetRemovalReason(reasonKey: string): void {
    void this.client.delete().key(reasonKey).exec().catch(() => undefined);
  }

  /** Written by a Register's claim under its fence lease, which deletes it (see `register`). */
  private claimMarkerKey(instanceId: string): string {
    return `${this.prefix}fence/${instanceId}`;
  }

  private get syncKey(): string {
    return `${this.prefix}sync`;
  }

  /** Counts etcd lost when no member answered its check for the stale window, so a silent partition is noticed without client traffic. */
  private startLiveness(): void {
    this.liveness = new EtcdLiveness({
      onLost: (reason) => this.markLost(reason),
      onRegained: () => this.tryRecover(),
      staleAfterMs: this.staleAfterMs,
    });
    this.liveness.start();
  }

  /** The view may be stale from now on: tell the core (once) and abandon any catch-up in flight. */
  private markLost(reason: string): void {
    if (this.closed) return;
    this.lossGeneration++;
    for (const w of this.watchedWaiters.splice(0)) w.reject(new Error(reason));
    if (!this.reported.available) return;
    this.reported = { available: false, reason };
    this.notify(false, reason);
  }

  /**
   * Serves again only once this replica has applied every change etcd had
   * committed when etcd answered again: it writes a marker key under the
   * prefix and waits until its own watch delivers that write. etcd's watch
   * delivers events in revision order with no gap, so seeing the marker's
   * revision W means every change up to W, at least etcd's revision when
   * the catch-up began, has been applied. (A watch response's header
   * revision, or a progress notification, does not say that on etcd 3.4.)
   */
  private tryRecover(): void {
    if (this.closed || this.fatal !== undefined || this.reported.available || this.catchingUp) return;
    if (this.watchDown || this.liveness?.isLost) return;
    this.catchingUp = true;
    const generation = this.lossGeneration;
    let retryInMs: number | undefined;
    void this.catchUp()
      .then(
        (revision) => {
          if (this.closed) return;
          // Lost again while catching up: that loss's own recovery found this
          // catch-up in flight and left it to finish, so start over now
          // (tryRecover waits if the loss is not over yet).
          if (generation !== this.lossGeneration) {
            retryInMs = 0;
            return;
          }
          this.reported = { available: true };
          void this.refreshMembers();
          this.notify(true, `etcd reachable; caught up at revision ${revision}`);
        },
        (err: unknown) => {
          this.options.logger?.warn({ err }, "could not catch up with etcd yet; retrying");
          retryInMs = 500;
        },
      )
      .finally(() => {
        this.catchingUp = false;
        if (retryInMs !== undefined) setTimeout(() => this.tryRecover(), retryInMs).unref();
      });
  }

  private async catchUp(): Promise<number> {
    // The liveness check's deadline, not the call timeout: a put sent while etcd elects a leader
    // waits for its whole deadline, and the next attempt (half a second later) finds the new one.
    const deadline = Date.now() + this.checkDeadlineMs;
    const put = await this.client.put(this.syncKey).value(this.probeOwnership.self).options({ deadline }).exec();
    const revision = Number(put.header.revision);
    await this.watchedUpTo(revision, this.options.liveness?.catchUpTimeoutMs ?? 5000);
    return revision;
  }

  /** Resolves once the watch has delivered `revision`; rejects after `timeoutMs` or at a loss. */
  private watchedUpTo(revision: number, timeoutMs: number): Promise<void> {
    if (this.watchedRevision >= revision) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.watchedWaiters.indexOf(waiter);
        if (i >= 0) this.watchedWaiters.splice(i, 1);
        reject(new Error(`the etcd watch did not reach revision ${revision} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.watchedWaiters.push(waiter);
    });
  }

  /** Records that the watch delivered everything up to `revision` and wakes catch-ups waiting for it. */
  private watched(revision: number): void {
    if (revision <= this.watchedRevision) return;
    this.watchedRevision = revision;
    const reached = this.watchedWaiters.filter((w) => w.revision <= revision);
    for (const w of reached) this.watchedWaiters.splice(this.watchedWaiters.indexOf(w), 1);
    for (const w of reached) w.resolve();
  }

  private notify(available: boolean, reason: string): void {
    for (const listener of this.availabilityListeners) listener(available, reason);
  }
}
