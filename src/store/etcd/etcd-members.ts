import { circuitBreaker, ConsecutiveBreaker, handleWhen, type CircuitBreakerPolicy } from "cockatiel";
import type { Etcd3 } from "etcd3";

/** Options of {@link EtcdMembers}. */
export interface EtcdMembersOptions {
  /** The etcd client URLs, as the etcd client was given them. */
  readonly endpoints: readonly string[];
  /** A client of that one member (calls never move to another). */
  readonly clientOf: (endpoint: string) => Etcd3;
  /** The key each member is asked for, linearizably. */
  readonly checkKey: string;
  /** Pause between the end of one check of a member and the start of the next, ms (shorter after a failed check). */
  readonly intervalMs: number;
  /** Deadline of each check, ms: a member whose last check failed or missed it is silent. */
  readonly deadlineMs: number;
  /** Told when a member turns silent, and when it answers again. */
  readonly onChange: (endpoint: string, answering: boolean) => void;
  /** Told when a silent member is taken out of the choice (calls go to the others from now on). */
  readonly onTakenOut: (endpoint: string) => void;
  /** Told of every check a member answered: etcd answers (the store's liveness). */
  readonly onCheckAnswered: () => void;
  /** Told of every check that failed, with the member and why. */
  readonly onCheckFailed: (reason: string) => void;
  /** Clock, for tests. Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Pause after a failed check, ms, when shorter than the interval: when etcd
 * elects a new leader it fails the reads that waited for one ("leader
 * changed"), and the next read succeeds at once, so the replica's liveness
 * window is not spent waiting out a full interval after the election.
 */
const RECHECK_AFTER_FAILURE_MS = 100;

interface Member {
  readonly endpoint: string;
  readonly client: Etcd3;
  /** Never opens by itself: held open (isolated) while the member is taken out of the choice. */
  readonly policy: CircuitBreakerPolicy;
  /** When its last successful check was sent. */
  lastAnswer: number;
  /** Its last check failed or missed its deadline. */
  silent: boolean;
  isolation: { dispose(): void } | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Which etcd members answer, asked of each member on a client of its own.
 *
 * etcd3 sends each call to a member picked at random, and a member that is
 * frozen (SIGSTOP, a stalled disk, a paused VM) keeps its TCP connections:
 * every call sent to it waits out its deadline, and a new connection to it
 * never becomes ready, while the other members would answer at once. So each
 * member gets a linearizable read every `intervalMs` (etcd answers it only
 * with a leader and a quorum behind it). A silent member (its last check
 * failed) is taken out of etcd3's choice (its per-member policy is held
 * open, so calls go to the next member) when another member answered after
 * it last did, until it answers again. So when every member is silent (etcd
 * down, this replica cut off), the one that answered last stays in: calls
 * wait on it rather than fail at once, and the store's own liveness check
 * reports the loss.
 *
 * The checks also say whether etcd answers at all (`onCheckAnswered`, the
 * store's liveness): with one endpoint there is nothing to choose, but its
 * check still runs.
 */
export class EtcdMembers {
  private readonly members = new Map<string, Member>();
  private readonly now: () => number;
  private running = false;

  constructor(private readonly options: EtcdMembersOptions) {
    this.now = options.now ?? Date.now;
    for (const endpoint of options.endpoints) {
      this.members.set(endpoint, {
        endpoint,
        client: options.clientOf(endpoint),
        policy: circuitBreaker(handleWhen(() => false), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(1) }),
        lastAnswer: this.now(),
        silent: false,
        isolation: undefined,
        timer: undefined,
      });
    }
  }

  /** etcd3's per-member fault handling (its `faultHandling.host`): refuses calls while the member is taken out. */
  policyFor(endpoint: string): CircuitBreakerPolicy {
    const member = this.members.get(endpoint);
    if (!member) throw new Error(`${endpoint} is not one of the etcd endpoints`);
    return member.policy;
  }

  isAnswering(endpoint: string): boolean {
    return this.members.get(endpoint)?.silent === false;
  }

  /** A member that answers, other than `except`; a random one, so replicas spread their watches. */
  pickAnswering(except?: string): string | undefined {
    const candidates = [...this.members.values()].filter((m) => !m.silent && m.endpoint !== except);
    return candidates[Math.floor(Math.random() * candidates.length)]?.endpoint;
  }

  /** Starts checking every member (once); settles when each has answered or failed its first check. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await Promise.all([...this.members.values()].map((m) => this.runCheck(m)));
  }

  /** Stops checking and closes the members' own clients (a check in flight settles unheard). */
  close(): void {
    this.running = false;
    for (const member of this.members.values()) {
      clearTimeout(member.timer);
      member.isolation?.dispose();
      member.client.close();
    }
  }

  private runCheck(member: Member): Promise<void> {
    const sentAt = this.now();
    return member.client
      .get(this.options.checkKey)
      .options({ deadline: sentAt + this.options.deadlineMs })
      .exec()
      .then(
        () => this.record(member, sentAt),
        (err: unknown) => {
          if (this.running) this.options.onCheckFailed(`${member.endpoint}: ${err instanceof Error ? err.message : String(err)}`);
          this.record(member, undefined);
        },
      )
      .finally(() => {
        const pauseMs = member.silent ? Math.min(this.options.intervalMs, RECHECK_AFTER_FAILURE_MS) : this.options.intervalMs;
        if (this.running) member.timer = setTimeout(() => void this.runCheck(member), pauseMs).unref();
      });
  }

  /** A check's outcome: when the answered check was sent, or undefined when it failed. */
  private record(member: Member, answeredCheckSentAt: number | undefined): void {
    if (!this.running) return;
    const wasSilent = member.silent;
    member.silent = answeredCheckSentAt === undefined;
    if (answeredCheckSentAt !== undefined) {
      member.lastAnswer = answeredCheckSentAt;
      this.options.onCheckAnswered();
    }
    const takenOut = this.applyIsolation();
    if (member.silent !== wasSilent) this.options.onChange(member.endpoint, !member.silent);
    for (const endpoint of takenOut) this.options.onTakenOut(endpoint);
  }

  /** Takes out every silent member that another member answered after; returns the ones taken out now. */
  private applyIsolation(): string[] {
    const members = [...this.members.values()];
    const takenOut: string[] = [];
    for (const member of members) {
      const takeOut = member.silent && members.some((other) => other !== member && other.lastAnswer > member.lastAnswer);
      if (takeOut && !member.isolation) {
        member.isolation = member.policy.isolate();
        takenOut.push(member.endpoint);
      } else if (!takeOut && member.isolation) {
        member.isolation.dispose();
        member.isolation = undefined;
      }
    }
    return takenOut;
  }
}
