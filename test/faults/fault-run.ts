import { Etcd3 } from "etcd3";
import { startEtcdCluster, type EtcdCluster } from "../support/etcd-cluster.js";
import { Watchers, Writers, type WriteRecord } from "./client-traffic.js";
import { checkWatch, checkWrites, readEtcdHistory, type WatchCheck, type WriteCheck } from "./history-checks.js";
import { HealthMonitor, Replica } from "./replica-fleet.js";
import { waitFor } from "../support/wait-for.js";

const KEY = "fault-run-registration-key-0001";
const PREFIX = "/service-registry/";
/** How long the writers' pace is measured before the first fault. */
const BASELINE_MS = 2000;
/**
 * A deadline past the replica's own etcd budget for a Register (its call
 * timeout, 3 s): the Register's fence lease is asked to end, rounded down to
 * the second, half a second before the replica gives up, which etcd's 2 s
 * minimum TTL allows when the Register's reads and the grant were quick.
 * Such a Register held past its end must not commit afterwards, unless an
 * etcd election renewed every lease meanwhile (docs/replicas.md).
 */
const FENCED_DEADLINE_MS = 4000;
/**
 * One writer per deadline. The nearer one keeps writes going through a fault
 * (a call stuck on a frozen etcd member gives up sooner); its Registers may
 * commit after their caller gave up, which the report lists apart.
 */
const WRITER_DEADLINES_MS = [2000, FENCED_DEADLINE_MS];

/** How long each fault lasts; the CI test uses short ones, `npm run faults` an operator's bad day. */
export interface FaultRunOptions {
  /** A frozen replica, a blackholed link, a dead etcd leader: how long before it is undone. */
  readonly faultMs: number;
  /** How long the whole etcd cluster is down. */
  readonly etcdOutageMs: number;
  readonly watchers: number;
  /** Membership lease TTL of the replicas, s (an outage longer than 2×TTL loses the lease). */
  readonly memberTtlS: number;
  readonly log?: (line: string) => void;
  /** Run only the faults whose name contains one of these (when debugging one). */
  readonly only?: readonly string[];
}

/** One fault, and what it did to the replicas and the clients. */
export interface PhaseReport {
  readonly fault: string;
  readonly heldMs: number;
  /** From the fault to the affected replica(s) no longer answering SERVING (what a health-checking balancer sees). */
  readonly detectedMs: number | undefined;
  /** From undoing the fault until every replica answers SERVING again. */
  readonly recoveredMs: number;
  /** Writes acknowledged per second while the fault was held (none in a quiet period). */
  readonly acksPerSecond: number | undefined;
  /** Longest time without any acknowledged write, from the fault until recovery (none in a quiet period). */
  readonly longestWriteGapMs: number | undefined;
  /** Failed client writes from the fault until recovery, by status code. */
  readonly writeErrors: Record<string, number>;
  /** Watch streams lost and resumed by the SDK, from the fault until recovery. */
  readonly watchDisconnects: number;
}

export interface FaultRunReport {
  /** Writes acknowledged per second before the first fault, to read each phase's `acksPerSecond` against. */
  readonly baselineAcksPerSecond: number;
  readonly phases: PhaseReport[];
  readonly writes: WriteCheck;
  readonly watchers: WatchCheck[];
  /** Membership puts of each replica from the etcd outage until the next fault (a rejoin storm shows here). */
  readonly membershipPutsAfterOutage: number[];
  /** Resident memory per replica just before and at the end of the etcd outage, MiB. */
  readonly rssDuringOutage: { replica: string; beforeMiB: number; endMiB: number }[];
}

interface Fault {
  readonly name: string;
  /** Replicas whose health answer the fault should change (detection time is measured on them). */
  readonly affected: (replicas: readonly Replica[]) => Promise<readonly Replica[]>;
  readonly inject: (replicas: readonly Replica[], etcd: EtcdCluster) => Promise<() => Promise<void>>;
  readonly heldMs: (o: FaultRunOptions) => number;
  readonly quiet?: boolean;
  /** etcd elects a leader during it, and its new leader renews every lease (fence leases included). */
  readonly elects?: boolean;
}

const FAULTS: readonly Fault[] = [
  {
    name: "replica killed (SIGKILL), restarted",
    affected: async (r) => [r[0]!],
    inject: async (r) => {
      await r[0]!.stop("SIGKILL");
      return () => r[0]!.start();
    },
    heldMs: (o) => o.faultMs,
  },
  {
    name: "replica frozen (SIGSTOP), thawed",
    affected: async (r) => [r[1]!],
    inject: async (r) => {
      r[1]!.freeze();
      return async () => r[1]!.thaw();
    },
    heldMs: (o) => o.faultMs,
  },
  {
    name: "replica's links to etcd blackholed, healed",
    affected: async (r) => [r[2]!],
    inject: async (r) => {
      r[2]!.cutFromEtcd();
      return async () => r[2]!.healLinkToEtcd();
    },
    // Long enough for the replica to notice by itself: 3 s after its last answered check.
    heldMs: (o) => Math.max(o.faultMs, 5000),
  },
  {
    name: "etcd leader killed (SIGKILL), restarted",
    elects: true,
    affected: async () => [],
    inject: async (_, etcd) => {
      const leader = await etcd.leader();
      await leader.kill();
      return () => leader.start();
    },
    heldMs: (o) => o.faultMs,
  },
  {
    name: "etcd leader frozen (SIGSTOP), thawed",
    elects: true,
    affected: async () => [],
    inject: async (_, etcd) => {
      const leader = await etcd.leader();
      leader.freeze();
      return async () => leader.thaw();
    },
    heldMs: (o) => o.faultMs,
  },
  {
    name: "etcd follower frozen (SIGSTOP), thawed",
    affected: async () => [],
    inject: async (_, etcd) => {
      const leader = await etcd.leader();
      const follower = etcd.members.find((m) => m !== leader)!;
      follower.freeze();
      return async () => follower.thaw();
    },
    heldMs: (o) => o.faultMs,
  },
  {
    name: "whole etcd cluster down (SIGKILL), restarted",
    elects: true,
    affected: async (r) => r,
    inject: async (_, etcd) => {
      await Promise.all(etcd.members.map((m) => m.kill()));
      return async () => void (await Promise.all(etcd.members.map((m) => m.start())));
    },
    heldMs: (o) => o.etcdOutageMs,
  },
  {
    name: "two replicas restarted (SIGTERM) in a quiet period",
    affected: async (r) => [r[0]!, r[1]!],
    inject: async (r) => {
      for (const replica of [r[0]!, r[1]!]) {
        await replica.stop("SIGTERM");
        await replica.start();
      }
      return async () => {};
    },
    heldMs: () => 0,
    quiet: true,
  },
];

/**
 * 3 etcd members, 3 replicas each linked to every member through its own
 * fault proxy, SDK writers and watchers on all three replicas; then each
 * fault in turn, waiting for full recovery after each. Afterwards every
 * acknowledged write is checked against etcd's history, and every watcher's
 * log for missed, repeated and backwards changes.
 */
export async function runFaults(options: FaultRunOptions): Promise<FaultRunReport> {
  const log = options.log ?? (() => {});
  const etcd = await startEtcdCluster(3);
  const replicas: Replica[] = [];
  let monitor: HealthMonitor | undefined;
  let writers: Writers | undefined;
  let watchers: Watchers | undefined;
  try {
    const env = { SERVICE_REGISTRATION_KEY: KEY, HEALTH_CHECKS: "false", ETCD_MEMBER_TTL_S: String(options.memberTtlS) };
    for (const name of ["r0", "r1", "r2"]) replicas.push(await Replica.start(name, etcd, env));
    monitor = new HealthMonitor(replicas);
    await monitor.allServing(20_000);
    const addresses = replicas.map((r) => r.address);
    writers = new Writers(addresses, KEY, WRITER_DEADLINES_MS);
    // Twice the registry's default bookmark interval: a stream silent for longer is stuck.
    watchers = new Watchers(addresses, KEY, options.watchers, 2 * 5000);
    await writers.ackAfter(0, 20_000);
    const baselineFrom = Date.now();
    await new Promise((r) => setTimeout(r, BASELINE_MS));
    const baselineAcksPerSecond = acksPerSecond(writers.records, baselineFrom, Date.now());
    log(`baseline: ${baselineAcksPerSecond.toFixed(1)} writes acknowledged per second`);

    const phases: PhaseReport[] = [];
    let rssDuringOutage: FaultRunReport["rssDuringOutage"] = [];
    // etcd revisions at the start of each fault, to place etcd's history in phases.
    const phaseStart: number[] = [];
    const direct = new Etcd3({ hosts: [...etcd.endpoints] });
    const faults = FAULTS.filter((f) => !options.only || options.only.some((o) => f.name.includes(o)));
    for (const fault of faults) {
      // Every replica a member again first: a thawed etcd leader may have revoked their leases
      // (etcd issue 15247, docs/replicas.md), and the outage's membership count starts from here.
      await waitFor(
        async () => (await direct.getAll().prefix(`${PREFIX}members/`).keys()).length === replicas.length,
        "every replica to be a member of the membership set",
        30_000,
      );
      phaseStart.push(Number((await direct.get(`${PREFIX}sync`).exec()).header.revision));
      log(`fault: ${fault.name}`);
      if (fault.quiet) writers.quiet();
      const affected = await fault.affected(replicas);
      const rssBefore = replicas.map((r) => r.rssMiB() ?? 0);
      const injectedAt = Date.now();
      const undo = await fault.inject(replicas, etcd);
      const held = fault.heldMs(options);
      if (held > 0) await new Promise((r) => setTimeout(r, held - (Date.now() - injectedAt)));
      if (fault.name.startsWith("whole etcd")) {
        rssDuringOutage = replicas.map((r, i) => ({ replica: r.name, beforeMiB: rssBefore[i]!, endMiB: r.rssMiB() ?? 0 }));
      }
      const undoneAt = Date.now();
      await undo();
      await monitor.allServing(60_000);
      const servingAt = Date.now();
      if (fault.quiet) writers.resume();
      const ackedAt = await writers.ackAfter(servingAt, 30_000);
      const recoveredAt = Math.max(servingAt, ackedAt);
      const detections = affected.map((r) => monitor!.firstAfter(injectedAt, r.name, ["NOT_SERVING", "unreachable"])?.at);
      phases.push({
        fault: fault.name,
        heldMs: undoneAt - injectedAt,
        detectedMs: detections.length > 0 && detections.every((d) => d !== undefined) ? Math.max(...(detections as number[])) - injectedAt : undefined,
        recoveredMs: servingAt - undoneAt,
        acksPerSecond: fault.quiet ? undefined : acksPerSecond(writers.records, injectedAt, undoneAt),
        longestWriteGapMs: fault.quiet ? undefined : longestGap(writers.records, injectedAt, recoveredAt),
        writeErrors: countBy(writers.records.filter((r) => !r.ok && r.at >= injectedAt && r.at <= recoveredAt).map((r) => (r.ok ? "" : r.code))),
        watchDisconnects: watchers.logs.reduce((n, l) => n + l.disconnects.filter((d) => d.at >= injectedAt && d.at <= recoveredAt).length, 0),
      });
      log(`  ${JSON.stringify(phases.at(-1))}`);
    }

    direct.close();
    await writers.stop();
    const history = await readEtcdHistory(etcd.endpoints, PREFIX);
    const head = history.filter((c) => c.area === "instances").at(-1)?.revision ?? 0;
    await watchers.reached(head, 30_000);
    await watchers.stop();
    const outage = faults.findIndex((f) => f.name.startsWith("whole etcd"));
    // Per replica that was a member when etcd went down: its membership puts until the next fault.
    const puts = new Map<string, number>();
    for (const c of history.filter((c) => c.area === "members")) {
      if (c.revision <= phaseStart[outage]!) {
        if (c.kind === "delete") puts.delete(c.id);
        else puts.set(c.id, 0);
      } else if (c.revision <= (phaseStart[outage + 1] ?? Infinity) && c.kind !== "delete" && puts.has(c.id)) {
        puts.set(c.id, puts.get(c.id)! + 1);
      }
    }
    const membershipPutsAfterOutage = [...puts.values()];
    return {
      baselineAcksPerSecond,
      phases,
      writes: checkWrites(writers.records, history, (r, revision) => {
        // The phase etcd committed it in: the last to start at or before its revision.
        const phase = phaseStart.findLastIndex((start) => start <= revision);
        return r.deadlineMs >= FENCED_DEADLINE_MS && !(phase >= 0 && faults[phase]!.elects);
      }),
      watchers: watchers.logs.map((l) => checkWatch(l, history)),
      membershipPutsAfterOutage,
      rssDuringOutage,
    };
  } catch (err) {
    for (const r of replicas) {
      const warnings = r.output().split("\n").filter((l) => /"level":[4-6]\d/.test(l)).slice(-15);
      log(`--- ${r.name}: ${monitor?.state(r.name)}; last warnings:\n${warnings.join("\n")}`);
    }
    throw err;
  } finally {
    await writers?.stop().catch(() => undefined);
    await watchers?.stop().catch(() => undefined);
    await monitor?.stop();
    await Promise.all(replicas.map((r) => r.close()));
    await etcd.close();
  }
}

function acksPerSecond(records: readonly WriteRecord[], from: number, to: number): number {
  return (records.filter((r) => r.ok && r.at >= from && r.at <= to).length * 1000) / Math.max(1, to - from);
}

function longestGap(records: readonly WriteRecord[], from: number, to: number): number {
  const acks = records.filter((r) => r.ok && r.at >= from && r.at <= to).map((r) => r.at);
  let last = from;
  let longest = 0;
  for (const at of acks.sort((a, b) => a - b)) {
    longest = Math.max(longest, at - last);
    last = at;
  }
  return Math.max(longest, to - last);
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}
