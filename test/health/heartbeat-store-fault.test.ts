import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { HealthCheck, HealthCheckKind, HealthStatus, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, callError, instanceAuth, keyAuth } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";
import { FlakyStore } from "../surfaces/flaky-store.js";

describe("a Heartbeat whose health change cannot be stored", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it("is answered UNAVAILABLE over gRPC and 503 over HTTP, not OK; the next one after the store recovers makes the instance healthy", async () => {
    const store = new FlakyStore();
    const stack = await startStack({ HEALTH_CHECKS: "true" }, { store });
    cleanup.push(() => stack.close());
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const healthCheck = HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: 200 });
    const { serviceId: id, token } = await call(client, client.register, { serviceType: "beats", port: 7001, host: "127.0.0.1", metadata: {}, healthCheck });
    const health = async () => (await call(client, client.getInstance, { instanceId: id }, keyAuth())).instance?.health;
    // No heartbeat for a ttl: the instance turns UNHEALTHY, and a heartbeat now is a change to store.
    await waitFor(async () => (await health()) === HealthStatus.HEALTH_STATUS_UNHEALTHY, "the ttl to run out");

    store.failing = true;
    const grpcBeat = await callError(client, client.heartbeat, { instanceId: id }, instanceAuth(id, token));
    expect(grpcBeat.code).toBe(status.UNAVAILABLE);
    expect(grpcBeat.details).toMatch(/store/);
    const httpBeat = await fetch(`${stack.httpUrl}/service/${id}/heartbeat`, { method: "PUT", headers: { "x-service-id": id, "x-service-token": token } });
    expect(httpBeat.status).toBe(503);
    expect(((await httpBeat.json()) as { error: { code: string } }).error.code).toBe("UNAVAILABLE");
    expect(await health()).toBe(HealthStatus.HEALTH_STATUS_UNHEALTHY);
    // Two at once: the second waits for the commit the first started, and hears how it went.
    const both = await Promise.all([1, 2].map(() => callError(client, client.heartbeat, { instanceId: id }, instanceAuth(id, token))));
    expect(both.map((e) => e.code)).toEqual([status.UNAVAILABLE, status.UNAVAILABLE]);

    store.failing = false;
    const beat = await call(client, client.heartbeat, { instanceId: id }, instanceAuth(id, token));
    expect(await health()).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    expect(Number(beat.revision)).toBe(stack.registry.revision);
  });
});
