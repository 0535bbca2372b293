import { createHash } from "node:crypto";
import { request } from "node:http";
import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import type { StoredInstance } from "../../src/registry/types.js";
import { call, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/** What node:crypto's one-shot `hash` was asked to hash, by the server's code (dependencies are not counted). */
const hashed = vi.hoisted(() => ({ inputs: [] as unknown[] }));
vi.mock("node:crypto", async (importOriginal) => {
  const crypto = await importOriginal<typeof import("node:crypto")>();
  const hash = ((...args: Parameters<typeof crypto.hash>) => {
    hashed.inputs.push(args[1]);
    return crypto.hash(...args);
  }) as typeof crypto.hash;
  return { ...crypto, default: { ...crypto, hash }, hash };
});

const keyHashes = (): number => hashed.inputs.filter((input) => input === TEST_KEY).length;
/** The key id instances have always recorded: the first 16 hex digits of the key's SHA-256. */
const KEY_ID = createHash("sha256").update(TEST_KEY).digest("hex").slice(0, 16);

describe("the registration key is hashed once per Register", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function start() {
    const server = await startStack();
    const client = new RegistryServiceClient(server.address, credentials.createInsecure());
    cleanup.push(() => server.close(), () => client.close());
    hashed.inputs.length = 0;
    return { server, client };
  }

  const keyIdOf = (server: Awaited<ReturnType<typeof start>>["server"], id: string): string | undefined =>
    (server.registry.getInstance(id) as StoredInstance).keyId;

  it("over gRPC, recording the same key id as ever", async () => {
    const { server, client } = await start();
    const { serviceId } = await call(client, client.register, { serviceType: "api", port: 8001, host: "10.0.0.1", metadata: {} });
    expect(keyHashes()).toBe(1);
    expect(keyIdOf(server, serviceId)).toBe(KEY_ID);
  });

  it("over HTTP, which checks the key before reading the body", async () => {
    const { server } = await start();
    const res = await fetch(`${server.httpUrl}/service`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ serviceType: "api", port: 8002, host: "10.0.0.1" }),
    });
    expect(res.status).toBe(201);
    const { serviceId } = (await res.json()) as { serviceId: string };
    expect(keyHashes()).toBe(1);
    expect(keyIdOf(server, serviceId)).toBe(KEY_ID);
  });

  it("over HTTP, still refuses a key removed while the body was read", async () => {
    const { server } = await start();
    const url = new URL(`${server.httpUrl}/service`);
    const body = JSON.stringify({ serviceType: "api", port: 8003, host: "10.0.0.1" });
    const answer = new Promise<number>((resolve, reject) => {
      const req = request(url, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write(body.slice(0, 5));
      cleanup.push(() => req.destroy());
      // Once the key is checked (the body is not all there yet), a reload removes it; then the rest of the body comes.
      waitFor(() => keyHashes() === 1, "the key to be checked").then(() => {
        expect(server.reloadKeys("another-registration-key-0123456789")).toBe(true);
        req.end(body.slice(5));
      }, reject);
    });
    expect(await answer).toBe(401);
    expect(server.registry.size).toBe(0);
  });
});
