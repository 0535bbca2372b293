import type { Etcd3, Lease } from "etcd3";
import type { Logger } from "pino";
import type { LivenessRelay } from "../../registry/registry-store.js";

type Report = "heartbeat" | "session_opened" | "session_gone";

/** How soon a failed session announcement (or withdrawal) is made again. */
const ANNOUNCE_RETRY_MS = 1000;

/**
 * Liveness reports between replicas, as etcd keys (see `LivenessRelay`):
 *
 * - `sessions/<instance id>/<replica>`: put under the replica's membership
 *   lease while it holds a session of the instance, deleted when its last
 *   one ends. A replica that dies loses its lease, and etcd deletes its
 *   keys: the other replicas see the deletes within its membership TTL.
 * - `heartbeats/<instance id>`: put at each heartbeat heard by a replica
 *   that does not keep the instance's clock; the put itself is the report.
 *   Also under the membership lease, and deleted with the instance.
 *
 * Every replica reads both from the one watch of the prefix (`apply`), so
 * each knows which replicas hold a session of each instance.
 */
export class EtcdLivenessKeys implements LivenessRelay {
  /** Instances with a session held by this replica, announced (or to be, at the next join). */
  private readonly heldHere = new Set<string>();
  /** Replicas announcing a session, by instance, as the watch reported them. */
  private readonly holders = new Map<string, Set<string>>();
  /** Instances with a heartbeat key, so removal deletes only keys that exist. */
  private readonly beaten = new Set<string>();
  /** When this replica last passed on a heartbeat, by instance. */
  private readonly relayedAt = new Map<string, number>();
  /** The latest announcement or withdrawal sent for each instance, so they reach etcd in the order they were made. */
  private readonly writes = new Map<string, Promise<unknown>>();
  private listener: (id: string, report: Report) => void = () => {};
  /** Set by `stop`: no announcement or withdrawal is tried again. */
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly self: string,
    private readonly lease: () => Lease | undefined,
    private readonly logger: Logger | undefined,
  ) {}

  private get sessionsPrefix(): string {
    return `${this.prefix}sessions/`;
  }
  private get heartbeatsPrefix(): string {
    return `${this.prefix}heartbeats/`;
  }

  /** The session announcements at open (a range read of the prefix). */
  async load(): Promise<void> {
    const keys = await this.client.getAll().prefix(this.sessionsPrefix).keys();
    for (const key of keys) {
      const holder = splitHolder(key.slice(this.sessionsPrefix.length));
      if (holder) this.addHolder(holder.id, holder.member);
    }
  }

  sessionOpened(id: string): void {
    this.heldHere.add(id);
    this.publish(id);
  }

  sessionClosed(id: string): void {
    if (!this.heldHere.delete(id)) return;
    this.publish(id);
  }

  sessionsElsewhere(id: string): number {
    const members = this.holders.get(id);
    if (!members) return 0;
    return members.size - (members.has(this.self) ? 1 : 0);
  }

  async heartbeat(id: string, ttlMs: number): Promise<void> {
    // One put per instance per quarter ttl keeps the clock: a client beating faster costs etcd nothing more.
    const now = Date.now();
    if (now - (this.relayedAt.get(id) ?? -Infinity) < ttlMs / 4) return;
    const lease = this.lease();
    if (!lease) throw new Error("this replica is not a member (rejoining etcd)");
    this.relayedAt.set(id, now);
    try {
      await lease.put(this.heartbeatsPrefix + id).value(String(now));
    } catch (err) {
      this.relayedAt.delete(id);
      throw err;
    }
  }

  /** Tries nothing again from now on (the store is closing). */
  stop(): void {
    this.stopped = true;
  }

  onReport(listener: (id: string, report: Report) => void): void {
    this.listener = listener;
  }

  /** Puts every announcement again under a new membership lease (after a rejoin: the old one's keys are gone). */
  reannounce(): void {
    for (const id of this.heldHere) this.publish(id);
  }

  /** The instance was removed: its heartbeat key goes too (asked of one replica, the one that probes it). */
  forget(id: string, mine: boolean): void {
    this.relayedAt.delete(id);
    if (!mine || !this.beaten.delete(id)) return;
    this.client.delete().key(this.heartbeatsPrefix + id).catch(() => undefined);
  }

  /** Reads one watch event; false when its key is not a liveness key. */
  apply(type: "Put" | "Delete", key: string): boolean {
    if (key.startsWith(this.sessionsPrefix)) {
      const holder = splitHolder(key.slice(this.sessionsPrefix.length));
      if (!holder) return true; // not a key this build writes: nothing to follow
      const { id, member } = holder;
      if (type === "Put") {
        // This replica's own announcements too, while it still holds the session: one put again after a
        // rejoin says its sessions are alive (an echo of a session closed meanwhile says nothing).
        if (this.addHolder(id, member) && (member !== this.self || this.heldHere.has(id))) this.report(id, "session_opened");
      } else {
        const members = this.holders.get(id);
        if (members?.delete(member)) {
          if (members.size === 0) this.holders.delete(id);
          if (member !== this.self) this.report(id, "session_gone");
        }
      }
      return true;
    }
    if (key.startsWith(this.heartbeatsPrefix)) {
      const id = key.slice(this.heartbeatsPrefix.length);
      if (type === "Put") {
        this.beaten.add(id);
        this.report(id, "heartbeat");
      } else this.beaten.delete(id);
      return true;
    }
    return false;
  }

  private sessionKey(id: string): string {
    return `${this.sessionsPrefix}${id}/${this.self}`;
  }

  /**
   * Makes etcd agree with `heldHere` for `id`: puts this replica's session
   * key (under its membership lease) while it holds a session, deletes it
   * once it holds none. A write etcd did not take is tried again a second
   * later if it is still the one wanted: an announcement missing, the
   * replica keeping the instance's clock sees no session; a withdrawal
   * missing, the key vouches for a session nobody holds while the lease lives.
   */
  private publish(id: string): void {
    const held = this.heldHere.has(id);
    const lease = this.lease();
    // Not a member right now: the join that follows announces it (and the lease's end took the key).
    if (held && !lease) return;
    const key = this.sessionKey(id);
    this.inOrder(id, () =>
      (held && lease ? lease.put(key).value("") : this.client.delete().key(key)).catch((err: unknown) => {
        this.logger?.warn({ err, instanceId: id }, `could not ${held ? "announce a session" : "withdraw a session's announcement"}; trying again`);
        setTimeout(() => {
          if (!this.stopped && this.heldHere.has(id) === held) this.publish(id);
        }, ANNOUNCE_RETRY_MS).unref();
      }),
    );
  }

  /** Runs `write` after the previous write for `id` settled (an announcement must not land after its withdrawal). */
  private inOrder(id: string, write: () => Promise<unknown>): void {
    const next = (this.writes.get(id) ?? Promise.resolve()).then(write);
    this.writes.set(id, next);
    void next.finally(() => {
      if (this.writes.get(id) === next) this.writes.delete(id);
    });
  }

  /** Adds `member` as a holder of a session of `id`; true when it is new. */
  private addHolder(id: string, member: string): boolean {
    let members = this.holders.get(id);
    if (!members) this.holders.set(id, (members = new Set()));
    if (members.has(member)) return false;
    members.add(member);
    return true;
  }

  private report(id: string, report: Report): void {
    try {
      this.listener(id, report);
    } catch (err) {
      this.logger?.error({ err, instanceId: id }, "a liveness report listener threw");
    }
  }
}

/** The instance id and replica a session key's `<id>/<member>` names, or undefined for a key not of that shape. */
function splitHolder(idAndMember: string): { id: string; member: string } | undefined {
  const slash = idAndMember.indexOf("/");
  if (slash <= 0) return undefined;
  return { id: idAndMember.slice(0, slash), member: idAndMember.slice(slash + 1) };
}
