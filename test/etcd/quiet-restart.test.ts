import { credentials } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { call, keyAuth, WatchCursor } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";
import { startEtcdReplica } from "../support/etcd-replica.js";

const KEY = "etcd-suite-registration-key-0001";
const BOOKMARK_MS = 200;

interface Replica {
  readonly name: string;
  readonly proc: ServerProcess;
  readonly client: RegistryServiceClient;
}

/** A resume point a client got from a replica: the revision of a SYNCED or BOOKMARK. */
interface ResumePoint {
  readonly from: string;
  readonly type: "synced" | "bookmark";
  readonly revision: number;
}

describe.skipIf(!etcdPresent)("replicas restarted in a quiet period (issue 22 item 4)", () => {
  let etcd: EtcdProcess;
  const procs: ServerProcess[] = [];
  const closers: (() => void)[] = [];

  beforeEach(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) close();
    for (const p of procs.splice(0)) p.kill("SIGKILL");
    await etcd.close();
  });

  async function replica(name: string): Promise<Replica> {
    const proc = await startEtcdReplica(etcd.endpoint, KEY, { BOOKMARK_INTERVAL_MS: String(BOOKMARK_MS) });
    procs.push(proc);
    const client = new RegistryServiceClient(`127.0.0.1:${proc.port}`, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    closers.push(() => client.close());
    return { name, proc, client };
  }

  async function restart(r: Replica): Promise<Replica> {
    r.proc.kill("SIGTERM"); // a rolling restart: the old process leaves the membership set
    await r.proc.exited;
    return replica(r.name);
  }

  /** Opens a snapshot watch: its SYNCED revision, then its first BOOKMARK's, then ends it. */
  async function resumePoints(r: Replica): Promise<{ epoch: string; points: ResumePoint[] }> {
    const w = WatchCursor.open(r.client, {}, keyAuth(KEY));
    try {
      let synced: WatchInstancesResponse;
      do synced = await w.next(5000);
      while (synced.type !== EventType.EVENT_TYPE_SYNCED);
      const bookmark = await w.next(5000);
      expect(bookmark.type, `replica ${r.name}: an idle stream's next message is a BOOKMARK`).toBe(EventType.EVENT_TYPE_BOOKMARK);
      return {
        epoch: synced.epoch,
        points: [
          { from: r.name, type: "synced", revision: synced.revision },
          { from: r.name, type: "bookmark", revision: bookmark.revision },
        ],
      };
    } finally {
      w.cancel();
    }
  }

  /** etcd's current revision; this etcd holds nothing but this registry's keys. */
  async function etcdRevision(): Promise<number> {
    const { Etcd3 } = await import("etcd3");
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      return Number((await raw.getAll().prefix("/service-registry/").exec()).header.revision);
    } finally {
      raw.close();
    }
  }

  /** Whether a Register fence key (the shared one, or a registration's claim marker) is still in etcd: its lease's expiry deletes it, a change with no watch event. */
  async function fencePresent(): Promise<boolean> {
    const { Etcd3 } = await import("etcd3");
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      return (await raw.getAll().prefix("/service-registry/fence").keys()).length > 0;
    } finally {
      raw.close();
    }
  }

  it("every caught-up replica reports the same revision, and a resume point from any one resumes on every other without RESET", async () => {
    let rs = await Promise.all([replica("a"), replica("b"), replica("c")]);
    const registerVia = (r: Replica, port: number) =>
      call(r.client, r.client.register, { serviceType: "api", port, host: "127.0.0.1", metadata: {} }, keyAuth(KEY));
    for (let i = 0; i < 3; i++) await registerVia(rs[i]!, 8000 + i);
    // The quiet period starts once the last Register's fence lease has expired
    // (by the Register's deadline): that deletion moves etcd's revision too.
    await waitFor(async () => !(await fencePresent()), "the Register fence keys to expire", 10_000, 100);

    // Restart two replicas with no instance change: only membership keys move etcd's revision.
    rs = [rs[0]!, await restart(rs[1]!), await restart(rs[2]!)];

    // Every replica has caught up once it reports etcd's revision (bounded wait:
    // the last membership put takes a moment to reach every watch).
    const expected = await etcdRevision();
    let seen: { epoch: string; points: ResumePoint[] }[] = [];
    // A timeout falls through to the assertions below, which say which replica lags.
    await waitFor(
      async () => {
        seen = await Promise.all(rs.map((r) => resumePoints(r)));
        return seen.every((s) => s.points.every((p) => p.revision === expected));
      },
      "every replica to report etcd's revision",
      5000,
    ).catch(() => undefined);
    const points = seen.flatMap((s) => s.points);
    expect(new Set(seen.map((s) => s.epoch)).size).toBe(1);
    expect(points.map((p) => `${p.from} ${p.type} ${p.revision}`)).toEqual(
      points.map((p) => `${p.from} ${p.type} ${expected}`),
    );
    const epoch = seen[0]!.epoch;

    // Every replica's resume point on every replica: no RESET, no snapshot, no
    // error (it does not wait for a revision it "has not reached"): nothing to
    // replay, so the stream idles into a BOOKMARK...
    const resumed = rs.flatMap((on) =>
      rs.map((of) => {
        const revision = seen[rs.indexOf(of)]!.points[1]!.revision;
        return { label: `${of.name}'s ${revision} on ${on.name}`, w: WatchCursor.open(on.client, { sinceRevision: revision, epoch }, keyAuth(KEY)) };
      }),
    );
    for (const { w } of resumed) closers.push(() => w.cancel());
    for (const { label, w } of resumed) {
      const first = await w.next(3000).catch((err: Error) => {
        throw new Error(`${label}: ${err.message}`);
      });
      expect(first.type, label).toBe(EventType.EVENT_TYPE_BOOKMARK);
      expect(first.revision, label).toBe(expected);
    }

    // ...and a new registration arrives on each exactly once, then the stream idles again.
    const next = await registerVia(rs[1]!, 8100);
    for (const { label, w } of resumed) {
      const got: WatchInstancesResponse[] = [];
      for (;;) {
        const m = await w.next(3000);
        if (m.type === EventType.EVENT_TYPE_BOOKMARK && got.length > 0) break;
        if (m.type !== EventType.EVENT_TYPE_BOOKMARK) got.push(m);
      }
      expect(got.map((m) => `${m.type} ${m.instance?.id} ${m.revision}`), label).toEqual([
        `${EventType.EVENT_TYPE_INSTANCE_REGISTERED} ${next.serviceId} ${next.instance!.revision}`,
      ]);
    }
  }, 30_000);
});
