import type { Etcd3 } from "etcd3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/store/etcd/etcd-store.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.js";
import { etcdPresent } from "./etcd-suite.js";

const PREFIX = "/catch-up-test/";
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!etcdPresent)("a replica catching up with etcd", () => {
  let etcd: EtcdProcess;
  let proxy: FaultProxy;
  let store: EtcdStore;

  beforeEach(async () => {
    etcd = await startEtcd();
    const { hostname, port } = new URL(etcd.endpoint);
    proxy = await startFaultProxy(hostname, Number(port));
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    await proxy.close();
    await etcd.close();
  });

  it("serves again after a loss that began and ended while an earlier catch-up was still in flight", async () => {
    store = new EtcdStore({ endpoints: [proxy.url], prefix: PREFIX, liveness: { intervalMs: 100, deadlineMs: 200, staleAfterMs: 400 } });
    const changes: boolean[] = [];
    let onChange: () => void = () => {};
    store.onAvailabilityChange((available) => {
      changes.push(available);
      onChange();
    });
    await store.open(() => {});
    const next = (available: boolean, timeoutMs: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no availability=${available} within ${timeoutMs} ms; saw ${JSON.stringify(changes)}`)), timeoutMs);
        onChange = () => {
          if (changes.at(-1) !== available) return;
          clearTimeout(timer);
          resolve();
        };
      });

    // The catch-up's marker write waits at the client until the test lets it go
    // (the etcd3 client's own put, instrumented; the write itself is real).
    const kv = (store as unknown as { client: Etcd3 }).client.kv;
    const put = kv.put.bind(kv);
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding: () => void = () => {};
    const holds = new Promise<void>((resolve) => (holding = resolve));
    let held = 0;
    kv.put = async (req, options) => {
      if (String(req.key) === `${PREFIX}sync` && held++ === 0) {
        holding();
        await released;
      }
      return put(req, options);
    };

    proxy.blackhole();
    await next(false, 3000);
    proxy.heal(); // the first catch-up starts, and its marker write waits
    await holds;
    // A second loss and its end, both while that catch-up is in flight.
    proxy.blackhole();
    await pause(1000);
    proxy.heal();
    await pause(500);
    release();
    await next(true, 5000);
    expect(changes).toEqual([false, true]);
  }, 30_000);
});
