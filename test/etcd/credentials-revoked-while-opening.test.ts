import { credentials, Metadata, status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { startEtcd } from "../support/etcd-process.js";
import { call, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

/**
 * A watch that resumes from a revision this replica has not reached yet waits
 * for it before it opens. A stream must still end when, during that wait, the
 * key that opened it is reloaded away or the instance whose credentials did
 * is removed: the removal came before the stream was listed under its key or
 * instance, so only a check once listed catches it. Only a replica on a
 * shared store waits so (one on a store of its own process answers RESET).
 */
describe.skipIf(!etcdPresent)("watch credentials revoked while the stream waits to open", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup() {
    const etcd = await startEtcd();
    cleanup.push(() => etcd.close());
    const stack = await startStack({ STORE: "etcd", ETCD_ENDPOINTS: etcd.endpoint });
    cleanup.push(() => stack.close());
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const instance = await call(client, client.register, { serviceType: "billing", host: "127.0.0.1", port: 9301, metadata: {} });
    // etcd deletes the Register's fence key when its lease expires, a second or two later, which moves the
    // revision too: the resume point below must be reached by the test's own change, after that deletion.
    const registered = instance.instance?.revision ?? 0;
    await waitFor(() => stack.registry.revision > registered, "the Register's fence key to expire", 10_000, 50);
    /** A resume point one revision ahead: the watch waits in `reach` until a change is made. */
    const ahead = { sinceRevision: stack.registry.revision + 1, epoch: stack.registry.epoch };
    const waiting = () => waitFor(() => stack.registry.resumesWaiting === 1, "the watch to wait for its resume point");
    /** Any change, made in-process (the test key may be gone by then): it lets the waiting watch open. */
    const change = () => stack.registry.register({ serviceType: "other", host: "127.0.0.1", port: 9399, metadata: {} });
    return { stack, client, instance, ahead, waiting, change };
  }

  /** Resolves with the status a gRPC watch ended with. */
  function ended(stream: ClientReadableStream<WatchInstancesResponse>): Promise<ServiceError> {
    return new Promise((resolve, reject) => {
      stream.on("data", () => {});
      stream.on("error", resolve);
      stream.on("end", () => reject(new Error("the stream ended OK")));
    });
  }

  it("gRPC: a stream opened with an instance's credentials ends UNAUTHENTICATED when the instance is removed meanwhile", async () => {
    const { client, instance, ahead, waiting } = await setup();
    const md = new Metadata();
    md.set("x-service-id", instance.serviceId);
    md.set("x-service-token", instance.token);
    const stream = client.watchInstances({ serviceType: "", sinceRevision: ahead.sinceRevision, epoch: ahead.epoch, everyHealthCheck: false, selector: {} }, md);
    cleanup.push(() => stream.cancel());
    const status_ = ended(stream);
    await waiting();
    await call(client, client.unregister, { instanceId: instance.serviceId }); // the change the watch waits for, and the removal
    const error = await status_;
    expect(error.code).toBe(status.UNAUTHENTICATED);
    expect(error.details).toMatch(/instance whose credentials opened this stream was removed/);
  });

  it("gRPC: a stream opened with a key ends UNAUTHENTICATED when the key is reloaded away meanwhile", async () => {
    const { stack, client, ahead, waiting, change } = await setup();
    const md = new Metadata();
    md.set("authorization", `Bearer ${TEST_KEY}`);
    const stream = client.watchInstances({ serviceType: "", sinceRevision: ahead.sinceRevision, epoch: ahead.epoch, everyHealthCheck: false, selector: {} }, md);
    cleanup.push(() => stream.cancel());
    const status_ = ended(stream);
    await waiting();
    expect(stack.reloadKeys("another-registration-key-0123456789")).toBe(true);
    await change();
    const error = await status_;
    expect(error.code).toBe(status.UNAUTHENTICATED);
    expect(error.details).toMatch(/registration key that opened this stream was removed/);
  });

  /** GET /watch resuming one revision ahead; resolves with the first server-sent event once the stream opens. */
  async function httpWatch(url: string, headers: Record<string, string>): Promise<{ event: string; data: Record<string, unknown> }> {
    const controller = new AbortController();
    cleanup.push(() => controller.abort());
    const response = await fetch(url, { headers, signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended without an event: ${text}`);
      text += decoder.decode(value, { stream: true });
      const record = text.split("\n\n").find((r) => r.includes("event: "));
      if (record === undefined) continue;
      const field = (name: string) => record.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2) ?? "";
      return { event: field("event"), data: JSON.parse(field("data") || "{}") as Record<string, unknown> };
    }
  }

  it("HTTP: a /watch stream opened with a key ends UNAUTHENTICATED when the key is reloaded away meanwhile", async () => {
    const { stack, ahead, waiting, change } = await setup();
    const first = httpWatch(`${stack.httpUrl}/watch?sinceRevision=${ahead.sinceRevision}&epoch=${ahead.epoch}`, { authorization: `Bearer ${TEST_KEY}` });
    await waiting();
    expect(stack.reloadKeys("another-registration-key-0123456789")).toBe(true);
    await change();
    expect(await first).toMatchObject({ event: "error", data: { code: "UNAUTHENTICATED", message: expect.stringMatching(/key/) } });
  });

  it("HTTP: a /watch stream opened with an instance's credentials ends UNAUTHENTICATED when the instance is removed meanwhile", async () => {
    const { stack, client, instance, ahead, waiting } = await setup();
    const first = httpWatch(`${stack.httpUrl}/watch?sinceRevision=${ahead.sinceRevision}&epoch=${ahead.epoch}`, {
      "x-service-id": instance.serviceId,
      "x-service-token": instance.token,
    });
    await waiting();
    await call(client, client.unregister, { instanceId: instance.serviceId });
    expect(await first).toMatchObject({ event: "error", data: { code: "UNAUTHENTICATED", message: expect.stringMatching(/instance/) } });
  });
});
