import { Etcd3 } from "etcd3";
import type { RegistryWatchEvent } from "../../src/client/watch-events.js";
import { OP_KEY, type WatchLog, type WriteRecord } from "./client-traffic.js";

/** One change of an instance key, as etcd's own history has it. */
export interface EtcdChange {
  readonly revision: number;
  readonly kind: "create" | "update" | "delete";
  readonly id: string;
  /** The `op` metadata of the instance (from the value, or the previous value of a delete). */
  readonly op: string | undefined;
  /** Under which key prefix: instances, members, ... (the part after the registry prefix). */
  readonly area: string;
}

/**
 * Every change etcd holds under `prefix`, from revision 1 to now, read with
 * etcd's own watch (nothing in the run compacts it). This is the truth the
 * clients' records are checked against.
 */
export async function readEtcdHistory(endpoints: readonly string[], prefix: string): Promise<EtcdChange[]> {
  const client = new Etcd3({ hosts: [...endpoints] });
  try {
    const head = Number((await client.get(`${prefix}sync`).exec()).header.revision);
    const changes: EtcdChange[] = [];
    const watcher = await client.watch().prefix(prefix).startRevision("1").withPreviousKV().create();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd history did not reach revision ${head} in 30 s`)), 30_000);
      watcher.on("data", (res) => {
        for (const e of res.events) {
          const key = e.kv.key.toString("utf8").slice(prefix.length);
          const slash = key.indexOf("/");
          const area = slash < 0 ? key : key.slice(0, slash);
          const id = slash < 0 ? "" : key.slice(slash + 1);
          const value = e.type === "Delete" ? e.prev_kv?.value : e.kv.value;
          const revision = Number(e.kv.mod_revision);
          const kind = e.type === "Delete" ? "delete" : e.kv.create_revision === e.kv.mod_revision ? "create" : "update";
          changes.push({ revision, kind, id, area, op: area === "instances" ? opOf(value) : undefined });
        }
        if (changes.length > 0 && changes.at(-1)!.revision >= head) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await watcher.cancel();
    return changes;
  } finally {
    client.close();
  }
}

function opOf(value: Buffer | undefined): string | undefined {
  if (!value) return undefined;
  try {
    return (JSON.parse(value.toString("utf8")) as { metadata?: Record<string, string> }).metadata?.[OP_KEY];
  } catch {
    return undefined;
  }
}

/** What the clients' write records say when checked against etcd's history. */
export interface WriteCheck {
  readonly acknowledged: number;
  readonly failed: number;
  /** Acknowledged writes etcd has no record of at the acknowledged revision. */
  readonly lost: string[];
  /** Registers the client saw fail that etcd committed anyway. */
  readonly committedDespiteFailure: number;
  /**
   * Of those, ones etcd certainly committed after the client had been told
   * the call failed, with at least how long after (ms), though they were
   * fenced (see `checkWrites`).
   */
  readonly committedAfterFailure: { op: string; laterByMs: number }[];
  /** The same for Registers the fence cannot hold (a near deadline, an etcd election meanwhile), which docs/replicas.md says may commit late. */
  readonly committedAfterFailureUnfenced: { op: string; laterByMs: number }[];
}

/** `fenced` says whether a failed Register, committed by etcd at `revision`, must not have committed after its caller was told it failed. */
export function checkWrites(
  records: readonly WriteRecord[],
  history: readonly EtcdChange[],
  fenced: (record: WriteRecord, revision: number) => boolean,
): WriteCheck {
  const instances = history.filter((c) => c.area === "instances");
  const at = new Map(instances.map((c) => [`${c.revision}/${c.id}`, c]));
  const byOp = new Map(instances.filter((c) => c.kind === "create").map((c) => [c.op, c]));
  const lost: string[] = [];
  const acked = records.filter((r) => r.ok);
  for (const r of acked) {
    const found = at.get(`${r.revision}/${r.id}`);
    const expected = r.kind === "register" ? "create" : "delete";
    if (found?.kind !== expected) lost.push(`${r.op} ${r.kind} ${r.id} @${r.revision}`);
  }
  // When a failed Register shows up in etcd, bound when it committed from
  // below (etcd keeps no commit times): after every acknowledged write etcd
  // committed before it was sent. An acknowledgement's own time bounds
  // nothing: a frozen replica can hand it over seconds after its commit.
  const failedRegisters = records.filter((r) => !r.ok && r.kind === "register");
  const committedAfterFailure: { op: string; laterByMs: number }[] = [];
  const committedAfterFailureUnfenced: { op: string; laterByMs: number }[] = [];
  let committedDespiteFailure = 0;
  for (const r of failedRegisters) {
    const commit = byOp.get(r.op);
    if (!commit) continue;
    committedDespiteFailure++;
    const committedAfter = Math.max(...acked.filter((a) => a.revision < commit.revision).map((a) => a.startedAt));
    if (committedAfter <= r.at) continue;
    (fenced(r, commit.revision) ? committedAfterFailure : committedAfterFailureUnfenced).push({ op: r.op, laterByMs: committedAfter - r.at });
  }
  return { acknowledged: acked.length, failed: records.length - acked.length, lost, committedDespiteFailure, committedAfterFailure, committedAfterFailureUnfenced };
}

/** What one watcher's log says when checked against etcd's history. */
export interface WatchCheck {
  readonly name: string;
  readonly changes: number;
  readonly resets: number;
  /** Changes etcd committed in a span the watcher covered, that it never received. */
  readonly missed: number;
  /** Changes received more than once. */
  readonly duplicates: number;
  /** Events whose revision is below one already seen (a view going back in time). */
  readonly backwards: number;
  readonly disconnects: number;
}

const CHANGE_TYPES = new Set(["instanceRegistered", "instanceRemoved", "healthCheckPassed", "healthCheckFailed"]);

/**
 * Splits the log into spans, each from a snapshot to the last revision seen
 * before the next snapshot; within a span every instance change etcd
 * committed after the snapshot's revision, up to the last revision the
 * watcher was told about (by a change or a bookmark), must have arrived
 * exactly once, in order.
 */
export function checkWatch(log: WatchLog, history: readonly EtcdChange[]): WatchCheck {
  const truth = history.filter((c) => c.area === "instances");
  let missed = 0;
  let duplicates = 0;
  let backwards = 0;
  let resets = 0;
  let changes = 0;
  let highest = 0;
  let span: { from: number; to: number; seen: number[] } | undefined;
  const closeSpan = (): void => {
    if (!span) return;
    const expected = truth.filter((c) => c.revision > span!.from && c.revision <= span!.to).map((c) => c.revision);
    const seen = new Set(span.seen);
    missed += expected.filter((r) => !seen.has(r)).length;
    duplicates += span.seen.length - seen.size;
  };
  for (const e of log.events as RegistryWatchEvent[]) {
    if (e.revision < highest && e.type !== "reset") backwards++;
    highest = Math.max(highest, e.revision);
    if (e.type === "reset") resets++;
    else if (e.type === "snapshot") {
      closeSpan();
      span = { from: e.revision, to: e.revision, seen: [] };
    } else if (span) {
      span.to = Math.max(span.to, e.revision);
      if (CHANGE_TYPES.has(e.type)) {
        span.seen.push(e.revision);
        changes++;
      }
    }
  }
  closeSpan();
  return { name: log.name, changes, resets, missed, duplicates, backwards, disconnects: log.disconnects.length };
}
