import { Etcd3 } from "etcd3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/store/etcd/etcd-store.js";
import type { Mutation } from "../../src/registry/registry-store.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const PREFIX = "/fence-test/";

function registration(n: number, notAfter: number, port = n): Mutation {
  const now = Date.now();
  return {
    op: "register",
    notAfter,
    instance: {
      id: `00000000-0000-7000-8000-${String(n).padStart(12, "0")}`,
      serviceType: "api", host: "127.0.0.1", port, metadata: {}, healthCheckPath: "/health",
      health: "healthy", draining: false, drainingSince: 0, registeredAt: now, updatedAt: now, tokenHash: "h".repeat(32),
    },
  };
}

/**
 * The store's etcd client, with `after` run each time a fence lease grant
 * has been answered: the moment between the grant and the transaction that
 * a partition must hit for the lease, not the deadline, to be what stops a
 * late commit. The grant itself still goes to etcd.
 */
function onGrant(store: EtcdStore, after: () => void): void {
  const leaseClient = (store as unknown as { client: Etcd3 }).client.leaseClient;
  const grant = leaseClient.leaseGrant.bind(leaseClient);
  leaseClient.leaseGrant = async (...args) => {
    const answer = await grant(...args);
    after();
    return answer;
  };
}

/** The store's etcd client, with `before` run each time a transaction is about to be sent. */
function onTxn(store: EtcdStore, before: () => void): void {
  const kv = (store as unknown as { client: { kv: { txn: (...args: unknown[]) => Promise<unknown> } } }).client.kv;
  const txn = kv.txn.bind(kv);
  kv.txn = (...args) => {
    before();
    return txn(...args);
  };
}

describe.skipIf(!etcdPresent)("the Register fence on etcd", () => {
  let etcd: EtcdProcess;
  let proxy: FaultProxy;
  let store: EtcdStore;
  let direct: Etcd3;

  beforeEach(async () => {
    etcd = await startEtcd();
    const { hostname, port } = new URL(etcd.endpoint);
    proxy = await startFaultProxy(hostname, Number(port));
    direct = new Etcd3({ hosts: etcd.endpoint });
    // Liveness reads slow enough not to reset the held connection meanwhile.
    store = new EtcdStore({ endpoints: [proxy.url], prefix: PREFIX, liveness: { intervalMs: 10_000, deadlineMs: 10_000, staleAfterMs: 20_000 } });
    await store.open(() => {});
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    direct.close();
    await proxy.close();
    await etcd.close();
  });

  const inEtcd = async (m: Mutation) =>
    (await direct.get(`${PREFIX}instances/${m.op === "register" ? m.instance.id : ""}`).exec()).kvs.length === 1;

  it("holds back a transaction delayed past its lease: the partition starts right after the grant", async () => {
    onGrant(store, () => proxy.blackhole());
    const m = registration(1, Date.now() + 500);
    await expect(store.commit(m)).rejects.toThrow(/etcd did not commit/);
    // The lease (etcd's minimum TTL) has expired and been revoked before the held transaction arrives.
    await new Promise((r) => setTimeout(r, 3500));
    proxy.heal();
    // The held bytes reach etcd at once; give it a moment to apply what it would.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await inEtcd(m)).toBe(false);
  }, 30_000);

  it("holds back a transaction that arrives just after its deadline: etcd has revoked the lease by then", async () => {
    onGrant(store, () => proxy.blackhole());
    // A deadline etcd's whole-second TTLs can meet with its expiry sweep to spare.
    const notAfter = Date.now() + 4000;
    const m = registration(2, notAfter);
    await expect(store.commit(m)).rejects.toThrow(/etcd did not commit/);
    // The caller has been told it failed; the held transaction arrives moments later.
    await new Promise((r) => setTimeout(r, notAfter + 300 - Date.now()));
    proxy.heal();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await inEtcd(m)).toBe(false);
  }, 30_000);

  it("holds back the hand-over of a live address delayed past its deadline: the instance there stays", async () => {
    const holder = registration(20, Date.now() + 10_000);
    await store.commit(holder);
    // A second instance at the same address: its Register first takes the address from the holder.
    const notAfter = Date.now() + 4000;
    const replacing = registration(21, notAfter, 20);
    onTxn(store, () => proxy.blackhole());
    await expect(store.commit(replacing)).rejects.toThrow(/etcd did not commit/);
    // The caller has been told it failed; the held hand-over arrives moments later.
    await new Promise((r) => setTimeout(r, notAfter + 300 - Date.now()));
    proxy.heal();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await inEtcd(holder)).toBe(true);
    expect(await inEtcd(replacing)).toBe(false);
  }, 30_000);

  it("acknowledges a Register that etcd3 resent after its first attempt committed, instead of calling it a collision", async () => {
    const outcomes: string[] = [];
    for (let n = 10; n < 14; n++) {
      let armed = true;
      onGrant(store, () => {
        if (!armed) return;
        armed = false;
        // The transaction goes out, its answer is lost with the connection.
        proxy.blackhole();
        setTimeout(() => {
          proxy.heal();
          setTimeout(() => proxy.reset(), 1);
        }, 50);
      });
      // Deadlines in different seconds: each Register gets a lease of its own, granted now.
      const m = registration(n, Date.now() + 3000 + (n - 10) * 1100);
      const told = await store.commit(m).then(() => "acknowledged", (e: Error) => e.message);
      outcomes.push(`${told} / ${(await inEtcd(m)) ? "in etcd" : "not in etcd"}`);
    }
    expect(outcomes.filter((o) => o.includes("collision"))).toEqual([]);
  }, 60_000);

  /**
   * The store's next transaction is sent twice, as etcd3 (an answer lost) or
   * the store itself (a member taken out) may send it: the first attempt
   * commits, `between` runs, and the store hears only the second's answer.
   */
  function sentTwice(between: () => Promise<void>): void {
    let armed = true;
    const kv = (store as unknown as { client: { kv: { txn: (...args: unknown[]) => Promise<unknown> } } }).client.kv;
    const txn = kv.txn.bind(kv);
    kv.txn = async (...args) => {
      if (!armed) return txn(...args);
      armed = false;
      await txn(...args);
      await between();
      return txn(...args);
    };
  }

  const revisionOf = async (key: string): Promise<number> => Number((await direct.get(key).exec()).kvs[0]?.create_revision ?? 0);

  it("acknowledges its own instance when a probe changed it before the second attempt, at the revision it registered", async () => {
    const m = registration(20, Date.now() + 3000);
    const key = `${PREFIX}instances/${m.op === "register" ? m.instance.id : ""}`;
    let registeredAt = 0;
    sentTwice(async () => {
      registeredAt = await revisionOf(key);
      const stored = JSON.parse((await direct.get(key).string())!) as Record<string, unknown>;
      await direct.put(key).value(JSON.stringify({ ...stored, health: "unhealthy" }));
    });
    const change = await store.commit(m);
    expect(registeredAt).toBeGreaterThan(0);
    expect(change).toMatchObject({ kind: "registered", revision: registeredAt });
  });

  it("acknowledges a registration replaced at its address before the second attempt, and leaves the instance that replaced it", async () => {
    const m = registration(21, Date.now() + 3000);
    const key = `${PREFIX}instances/${m.op === "register" ? m.instance.id : ""}`;
    const other = registration(22, Date.now() + 3000, 21); // the same address
    const otherKey = `${PREFIX}instances/${other.op === "register" ? other.instance.id : ""}`;
    let registeredAt = 0;
    sentTwice(async () => {
      registeredAt = await revisionOf(key);
      // Another replica's Register takes the address: the instance goes, the record names the newcomer.
      const record = (await direct.getAll().prefix(`${PREFIX}addresses/`).keys())[0]!;
      await direct.delete().key(key);
      await direct.put(record).value(other.op === "register" ? other.instance.id : "");
      await direct.put(otherKey).value("{}");
    });
    const change = await store.commit(m);
    expect(registeredAt).toBeGreaterThan(0);
    expect(change).toMatchObject({ kind: "registered", revision: registeredAt });
    expect(await direct.get(otherKey).string()).toBe("{}");
  });

  it("acknowledges an Unregister whose earlier attempt removed the instance, and leaves no removal reason behind", async () => {
    const m = registration(23, Date.now() + 3000);
    const id = m.op === "register" ? m.instance.id : "";
    await store.commit(m);
    let removedAt = 0;
    sentTwice(async () => {
      removedAt = Number((await direct.get(`${PREFIX}removals/${id}`).exec()).kvs[0]?.mod_revision ?? 0);
    });
    const change = await store.commit({ op: "remove", id, reason: "unregistered", at: Date.now() });
    expect(removedAt).toBeGreaterThan(0);
    expect(change).toMatchObject({ kind: "removed", revision: removedAt, reason: "unregistered" });
    expect(await inEtcd(m)).toBe(false);
    await waitFor(async () => (await direct.get(`${PREFIX}removals/${id}`).exec()).kvs.length === 0, "the removal reason to be deleted", 5000);
  });
});
