import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClientError } from "../../src/client/client-error.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { etcdPresent } from "../etcd/etcd-suite.js";
import { startEtcd } from "../support/etcd-process.js";
import type { ServerProcess } from "../support/server-process.js";
import { changeRevisions, drain } from "./helpers.js";
import { startEtcdReplica } from "../support/etcd-replica.js";

const KEY = "etcd-client-suite-key-0123456789";
const FAST = { initialMs: 20, maxMs: 200 };
/** The replicas' BOOKMARK interval: short, so "2 bookmark intervals" is a second. */
const BOOKMARK_MS = 500;

describe.skipIf(!etcdPresent)("the SDK when its preferred replica hangs (SIGSTOP)", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("reads succeed on another replica within 2 s; watches move there and resume with no gap or duplicate", async () => {
    const etcd = await startEtcd();
    cleanups.push(() => etcd.close());
    const replica = async (): Promise<ServerProcess> => {
      const p = await startEtcdReplica(etcd.endpoint, KEY, { BOOKMARK_INTERVAL_MS: String(BOOKMARK_MS) });
      cleanups.push(async () => {
        // A stopped process ignores SIGKILL's exit until it runs again: wake it, then end it.
        p.child.kill("SIGCONT");
        p.kill("SIGKILL");
        await p.exited;
      });
      return p;
    };
    const [a, b] = await Promise.all([replica(), replica()]);
    const addressA = `127.0.0.1:${a.port}`;
    const addressB = `127.0.0.1:${b.port}`;
    // Keepalive and per-attempt timeout left at the SDK's defaults: they are what this test is about.
    const client = new RegistryClient({ addresses: [addressA, addressB], auth: { key: KEY }, backoff: FAST, connectTimeoutMs: 500 });
    cleanups.push(() => client.close());
    // Writes go through B only, so they land whatever the SDK under test does.
    const writer = new RegistryClient({ addresses: [addressB], auth: { key: KEY } });
    cleanups.push(() => writer.close());
    // A client of its own for writes, which are never repeated on another address.
    const registrar = new RegistryClient({ addresses: [addressA, addressB], auth: { key: KEY }, connectTimeoutMs: 500 });
    cleanups.push(() => registrar.close());
    await registrar.listServices(); // connected to A

    // One watch that gives up on a stream silent for two bookmark intervals, one that
    // never does (idle timeout off): only the channel's keepalive can move it.
    const disconnects: Record<string, string[]> = { byProgress: [], byKeepalive: [] };
    const watch = (name: string, idleTimeoutMs: number) =>
      drain(client.watch({ serviceType: "api", idleTimeoutMs, onDisconnect: ({ error }) => disconnects[name]!.push(`${error.address} ${error.codeName}`) }));
    const byProgress = watch("byProgress", 2 * BOOKMARK_MS);
    const byKeepalive = watch("byKeepalive", 0);
    const revisions: number[] = [];
    for (let i = 0; i < 2; i++) revisions.push((await writer.register({ serviceType: "api", port: 1000 + i, host: "10.0.0.1" })).instance.revision);
    for (const log of [byProgress, byKeepalive]) {
      await log.until((e) => changeRevisions(e).includes(revisions.at(-1)!), "the first changes", 10_000);
    }
    expect((await client.getByType("api")).instances).toHaveLength(2);

    // A hangs: its connections stay open, its kernel still accepts new ones, nothing answers.
    a.child.kill("SIGSTOP");
    const frozenAt = Date.now();

    const [{ instances }, registerError] = await Promise.all([
      client.getByType("api"),
      registrar.register({ serviceType: "other", port: 1, host: "10.0.0.9" }, { deadlineMs: 500 }).then(
        () => undefined,
        (err: unknown) => err,
      ),
    ]);
    const readAfterMs = Date.now() - frozenAt;
    // A write that reached A is not repeated (A may have applied it), but A stops being preferred.
    expect(registerError).toBeInstanceOf(RegistryClientError);
    expect([status.DEADLINE_EXCEEDED, status.UNAVAILABLE]).toContain((registerError as RegistryClientError).code);
    expect((registerError as RegistryClientError).address).toBe(addressA);
    const registered = Date.now();
    await registrar.register({ serviceType: "other", port: 2, host: "10.0.0.9" }, { deadlineMs: 1000 });
    expect(Date.now() - registered).toBeLessThan(500);
    expect(instances).toHaveLength(2);
    expect(readAfterMs).toBeLessThan(2000);
    // The preference moved: the next read does not wait for A again.
    const start = Date.now();
    await client.listServices();
    expect(Date.now() - start).toBeLessThan(500);

    for (let i = 0; i < 2; i++) revisions.push((await writer.register({ serviceType: "api", port: 2000 + i, host: "10.0.0.2" })).instance.revision);
    const movedAfterMs: Record<string, number> = {};
    await Promise.all(
      Object.entries({ byProgress, byKeepalive }).map(async ([name, log]) => {
        await log.until((e) => changeRevisions(e).includes(revisions.at(-1)!), `${name}: the changes made during the freeze`, 10_000);
        movedAfterMs[name] = Date.now() - frozenAt;
      }),
    );
    for (const log of [byProgress, byKeepalive]) {
      expect(log.error).toBeUndefined();
      expect(changeRevisions(log.items)).toEqual(revisions);
      expect(log.items.filter((e) => e.type === "snapshot")).toHaveLength(1);
      expect(log.items.some((e) => e.type === "reset")).toBe(false);
    }
    // Each watch left A once, for its own reason, and stayed on B.
    expect(disconnects.byProgress).toEqual([`${addressA} DEADLINE_EXCEEDED`]);
    expect(disconnects.byKeepalive).toEqual([`${addressA} UNAVAILABLE`]);
    // Keepalive (1 s interval + 1 s timeout by default) plus a reconnect; the progress timeout is sooner.
    expect(movedAfterMs.byProgress).toBeLessThan(2000);
    expect(movedAfterMs.byKeepalive).toBeLessThan(3000);
  }, 40_000);
});
