import { randomBytes, randomUUID } from "node:crypto";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventType, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import {
  call,
  callError,
  instanceAuth,
  keyAuth,
  register,
  startHarness,
  TEST_KEY,
  WatchCursor,
  type Harness,
} from "../support/registry-harness.js";

/**
 * SPEC 4.1: every RPC against every kind of bad credential, on a real server.
 * Each cell checks the gRPC code and that neither the status details nor the
 * trailing metadata carry any secret (key, wrong key, any token).
 */

type Rpc = "Register" | "GetByType" | "GetInstance" | "Unregister" | "ListServices" | "WatchInstances";
const RPCS: readonly Rpc[] = ["Register", "GetByType", "GetInstance", "Unregister", "ListServices", "WatchInstances"];
const READ_RPCS: readonly Rpc[] = ["GetByType", "GetInstance", "ListServices", "WatchInstances"];

type BadCredential =
  | "no credentials"
  | "wrong key"
  | "unknown id"
  | "wrong token"
  | "another instance's token"
  | "removed instance's token"
  | "id without token"
  | "token without id";
const BAD_CREDENTIALS: readonly BadCredential[] = [
  "no credentials",
  "wrong key",
  "unknown id",
  "wrong token",
  "another instance's token",
  "removed instance's token",
  "id without token",
  "token without id",
];

/** A fresh secret shaped like a real token: 32 random bytes, base64url. */
const tokenLike = (): string => randomBytes(32).toString("base64url");

const WRONG_KEY = `wrong-registration-key-${randomBytes(8).toString("hex")}`;
const UNKNOWN_ID = randomUUID();
const UNKNOWN_TOKEN = tokenLike();
const WRONG_TOKEN = tokenLike();
const BASIC_SECRET = `basic-secret-${randomBytes(12).toString("hex")}`;

interface Creds {
  readonly id: string;
  readonly token: string;
}

/** Everything secret that a test sent or the registry issued. */
const secrets = new Set<string>([TEST_KEY, WRONG_KEY, UNKNOWN_TOKEN, WRONG_TOKEN, BASIC_SECRET]);

function trailerText(md: Metadata | undefined): string {
  if (!md) return "";
  return Object.entries(md.toJSON())
    .map(([k, vs]) => `${k}=${vs.map((v) => (Buffer.isBuffer(v) ? v.toString("utf8") : String(v))).join(",")}`)
    .join("\n");
}

/** Fails when the error's message, details or trailers contain any secret (whole, or a 10-char head or tail). */
function expectNoSecrets(err: ServiceError): void {
  const surfaces = { details: err.details ?? "", message: err.message ?? "", trailers: trailerText(err.metadata) };
  for (const secret of secrets) {
    for (const piece of [secret, secret.slice(0, 10), secret.slice(-10)]) {
      for (const [where, text] of Object.entries(surfaces)) {
        expect(text.includes(piece), `${where} leaks a secret (${JSON.stringify(piece)}): ${JSON.stringify(text)}`).toBe(false);
      }
    }
  }
}

describe("auth matrix (SPEC 4.1)", () => {
  let h: Harness;
  let a: Creds;
  let b: Creds;
  let removed: Creds;

  beforeAll(async () => {
    h = await startHarness();
    a = await register(h, "api", 9001);
    b = await register(h, "api", 9002);
    removed = await register(h, "api", 9003);
    for (const c of [a, b, removed]) secrets.add(c.token);
    await call(h.client, h.client.unregister, { instanceId: removed.id });
  });
  afterAll(async () => {
    await h.close();
  });

  function badMetadata(cred: BadCredential): Metadata {
    switch (cred) {
      case "no credentials":
        return new Metadata();
      case "wrong key":
        return keyAuth(WRONG_KEY);
      case "unknown id":
        return instanceAuth(UNKNOWN_ID, UNKNOWN_TOKEN);
      case "wrong token":
        return instanceAuth(a.id, WRONG_TOKEN);
      case "another instance's token":
        return instanceAuth(a.id, b.token);
      case "removed instance's token":
        return instanceAuth(removed.id, removed.token);
      case "id without token": {
        const md = new Metadata();
        md.set("x-service-id", a.id);
        return md;
      }
      case "token without id": {
        const md = new Metadata();
        md.set("x-service-token", a.token);
        return md;
      }
    }
  }

  /** The instance an Unregister cell targets: the one its credentials claim to be, else A. */
  function unregisterTarget(cred: BadCredential): string {
    if (cred === "unknown id") return UNKNOWN_ID;
    if (cred === "removed instance's token") return removed.id;
    return a.id;
  }

  /** Opens a watch that is expected to fail; resolves with its status. */
  async function watchError(md: Metadata, serviceType = ""): Promise<ServiceError> {
    const cursor = WatchCursor.open(h.client, { serviceType }, md);
    let message: WatchInstancesResponse | undefined;
    try {
      message = await cursor.next(3000);
    } catch (err) {
      if (cursor.error) return cursor.error;
      throw err;
    }
    cursor.cancel();
    throw new Error(`expected the watch to fail, but it sent ${JSON.stringify(message)}`);
  }

  /** Opens a watch that is expected to work: reads up to SYNCED, then cancels. */
  async function watchSyncs(md: Metadata): Promise<WatchInstancesResponse[]> {
    const cursor = WatchCursor.open(h.client, {}, md);
    const seen: WatchInstancesResponse[] = [];
    try {
      for (;;) {
        const m = await cursor.next(3000);
        seen.push(m);
        if (m.type === EventType.EVENT_TYPE_SYNCED) return seen;
      }
    } finally {
      cursor.cancel();
    }
  }

  /** Calls `rpc` expecting failure. */
  function attempt(rpc: Rpc, md: Metadata, unregisterId = a.id): Promise<ServiceError> {
    switch (rpc) {
      case "Register":
        return callError(h.client, h.client.register, { serviceType: "intruder", port: 7000, host: "127.0.0.1", metadata: {} }, md);
      case "GetByType":
        return callError(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: false, selector: {} }, md);
      case "GetInstance":
        return callError(h.client, h.client.getInstance, { instanceId: a.id }, md);
      case "Unregister":
        return callError(h.client, h.client.unregister, { instanceId: unregisterId }, md);
      case "ListServices":
        return callError(h.client, h.client.listServices, {}, md);
      case "WatchInstances":
        return watchError(md);
    }
  }

  /** Calls a read RPC (or Watch) expecting success. */
  async function read(rpc: Rpc, md: Metadata): Promise<void> {
    switch (rpc) {
      case "GetByType": {
        const res = await call(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: false, selector: {} }, md);
        expect(res.instances.map((i) => i.id).sort()).toEqual([a.id, b.id].sort());
        return;
      }
      case "GetInstance": {
        const res = await call(h.client, h.client.getInstance, { instanceId: b.id }, md);
        expect(res.instance?.id).toBe(b.id);
        return;
      }
      case "ListServices": {
        const res = await call(h.client, h.client.listServices, {}, md);
        expect(res.services).toEqual([{ serviceType: "api", healthyCount: 2, totalCount: 2, drainingCount: 0, panic: false }]);
        return;
      }
      case "WatchInstances": {
        const seen = await watchSyncs(md);
        const snapshotIds = seen.filter((m) => m.snapshot).map((m) => m.instance?.id);
        expect(snapshotIds.sort()).toEqual([a.id, b.id].sort());
        return;
      }
      default:
        throw new Error(`${rpc} is not a read`);
    }
  }

  /** A and B are still registered and nothing else was added. */
  async function expectRegistryIntact(): Promise<void> {
    const res = await call(h.client, h.client.listServices, {});
    expect(res.services).toEqual([{ serviceType: "api", healthyCount: 2, totalCount: 2, drainingCount: 0, panic: false }]);
    for (const id of [a.id, b.id]) {
      expect((await call(h.client, h.client.getInstance, { instanceId: id })).instance?.id).toBe(id);
    }
  }

  const matrix = RPCS.flatMap((rpc) => BAD_CREDENTIALS.map((cred) => [rpc, cred] as const));

  it.each(matrix)("%s with %s → UNAUTHENTICATED, no secret in details or trailers", async (rpc, cred) => {
    const err = await attempt(rpc, badMetadata(cred), unregisterTarget(cred));
    expect(err.code, err.details).toBe(status.UNAUTHENTICATED);
    expect(err.details.length).toBeGreaterThan(0);
    expectNoSecrets(err);
    if (rpc === "Register" || rpc === "Unregister") await expectRegistryIntact();
  });

  it("Register with valid instance credentials instead of the key → PERMISSION_DENIED, nothing registered", async () => {
    const err = await attempt("Register", instanceAuth(a.id, a.token));
    expect(err.code, err.details).toBe(status.PERMISSION_DENIED);
    expectNoSecrets(err);
    await expectRegistryIntact();
  });

  it.each(READ_RPCS)("the registration key works for %s", async (rpc) => {
    await read(rpc, keyAuth());
  });

  it.each(READ_RPCS)("valid instance credentials work for %s", async (rpc) => {
    await read(rpc, instanceAuth(a.id, a.token));
  });

  it("the auth scheme is case-insensitive: 'bearer <key>' is accepted", async () => {
    const md = new Metadata();
    md.set("authorization", `bearer ${TEST_KEY}`);
    await read("ListServices", md);
  });

  it("Unregister of another live instance with valid instance credentials → PERMISSION_DENIED, the other stays", async () => {
    const err = await attempt("Unregister", instanceAuth(a.id, a.token), b.id);
    expect(err.code, err.details).toBe(status.PERMISSION_DENIED);
    expectNoSecrets(err);
    await expectRegistryIntact();
  });

  it("Unregister of an unknown id with instance credentials answers as for a live one (no existence oracle)", async () => {
    const live = await attempt("Unregister", instanceAuth(a.id, a.token), b.id);
    const unknown = await attempt("Unregister", instanceAuth(a.id, a.token), randomUUID());
    expect(unknown.code).toBe(status.PERMISSION_DENIED);
    expect(unknown.details).toBe(live.details);
    await expectRegistryIntact();
  });

  it.each(RPCS)("%s: unknown id and wrong token get the same code and message (no oracle)", async (rpc) => {
    const unknown = await attempt(rpc, badMetadata("unknown id"), a.id);
    const wrong = await attempt(rpc, badMetadata("wrong token"), a.id);
    expect(unknown.code).toBe(status.UNAUTHENTICATED);
    expect(wrong.code).toBe(unknown.code);
    expect(wrong.details).toBe(unknown.details);
    expect(trailerText(wrong.metadata)).toBe(trailerText(unknown.metadata));
  });

  const MALFORMED: readonly { label: string; header: string }[] = [
    { label: "Basic x", header: "Basic x" },
    { label: "Basic <secret>", header: `Basic ${BASIC_SECRET}` },
    { label: "Token <valid key>", header: `Token ${TEST_KEY}` },
    { label: "Bearer without a key", header: "Bearer" },
    { label: "bearer without a key", header: "bearer" },
    { label: "Bearer <valid key> extra", header: `Bearer ${TEST_KEY} extra` },
    { label: "a bare key without a scheme", header: TEST_KEY },
  ];
  const malformedMatrix = RPCS.flatMap((rpc) => MALFORMED.map((m) => [rpc, m.label, m.header] as const));

  it.each(malformedMatrix)("%s with authorization %s → UNAUTHENTICATED, not echoed", async (rpc, _label, header) => {
    const md = new Metadata();
    md.set("authorization", header);
    const err = await attempt(rpc, md);
    expect(err.code, err.details).toBe(status.UNAUTHENTICATED);
    expectNoSecrets(err);
    if (rpc === "Register" || rpc === "Unregister") await expectRegistryIntact();
  });

  describe("a removed instance's token stops working at once", () => {
    it.each(["itself", "the key holder"] as const)("unregistered by %s: the very next call is UNAUTHENTICATED", async (by) => {
      const x = await register(h, "ephemeral", 9100);
      secrets.add(x.token);
      const md = (): Metadata => instanceAuth(x.id, x.token);
      await call(h.client, h.client.getInstance, { instanceId: x.id }, md());

      await call(h.client, h.client.unregister, { instanceId: x.id }, by === "itself" ? md() : keyAuth());

      for (const rpc of RPCS) {
        const err = await attempt(rpc, md(), x.id);
        expect(err.code, `${rpc}: ${err.details}`).toBe(status.UNAUTHENTICATED);
        expectNoSecrets(err);
      }
      await expectRegistryIntact();
    });
  });
});

describe("several registration keys (rotation)", () => {
  const K1 = `rotation-key-one-${randomBytes(8).toString("hex")}`;
  const K2 = `rotation-key-two-${randomBytes(8).toString("hex")}`;
  let h: Harness;

  beforeAll(async () => {
    secrets.add(K1).add(K2);
    h = await startHarness({ keys: [K1, K2] });
  });
  afterAll(async () => {
    await h.close();
  });

  it.each([
    ["the first", K1],
    ["the second", K2],
  ])("%s key registers, reads, watches and unregisters", async (_label, key) => {
    const res = await call(h.client, h.client.register, { serviceType: "rot", port: 8000, host: "127.0.0.1", metadata: {} }, keyAuth(key));
    const listed = await call(h.client, h.client.getByType, { serviceType: "rot", includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth(key));
    expect(listed.instances.map((i) => i.id)).toContain(res.serviceId);
    await call(h.client, h.client.listServices, {}, keyAuth(key));

    const cursor = WatchCursor.open(h.client, { serviceType: "rot" }, keyAuth(key));
    try {
      for (;;) {
        const m = await cursor.next(3000);
        if (m.type === EventType.EVENT_TYPE_SYNCED) break;
      }
    } finally {
      cursor.cancel();
    }
    await call(h.client, h.client.unregister, { instanceId: res.serviceId }, keyAuth(key));
  });

  it("an instance registered with one key can be unregistered with the other", async () => {
    const res = await call(h.client, h.client.register, { serviceType: "rot", port: 8001, host: "127.0.0.1", metadata: {} }, keyAuth(K1));
    const gone = await call(h.client, h.client.unregister, { instanceId: res.serviceId }, keyAuth(K2));
    expect(gone.instance?.id).toBe(res.serviceId);
  });

  it("a key that is not configured is refused without being echoed", async () => {
    const err = await callError(h.client, h.client.listServices, {}, keyAuth(TEST_KEY));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expectNoSecrets(err);
  });
});

describe("a watch opened with instance credentials", () => {
  it("ends with UNAUTHENTICATED as soon as that instance is removed", async () => {
    const h = await startHarness();
    try {
      const a = await register(h, "api", 9001);
      const other = WatchCursor.open(h.client, {}, keyAuth());
      const own = WatchCursor.open(h.client, {}, instanceAuth(a.id, a.token));
      await own.take(2);
      await other.take(2);
      await call(h.client, h.client.unregister, { instanceId: a.id });
      const err = await own.status();
      expect(err.code).toBe(status.UNAUTHENTICATED);
      expect(err.details).not.toContain(a.token);
      // A stream opened with the key is unaffected and sees the removal.
      expect((await other.next()).type).toBe(EventType.EVENT_TYPE_INSTANCE_REMOVED);
      other.cancel();
    } finally {
      await h.close();
    }
  });
});

describe("a registration key with spaces (the seed's .env example)", () => {
  const SEED_KEY = "some really long and complicated string";
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ keys: [SEED_KEY] });
  });
  afterAll(async () => {
    await h.close();
  });

  it("is everything after 'Bearer ', spaces included", async () => {
    const res = await call(h.client, h.client.register, { serviceType: "seed", port: 3000, host: "127.0.0.1", metadata: {} }, keyAuth(SEED_KEY));
    const listed = await call(h.client, h.client.getByType, { serviceType: "seed", includeUnhealthy: false, includeDraining: false, selector: {} }, keyAuth(SEED_KEY));
    expect(listed.instances.map((i) => i.id)).toEqual([res.serviceId]);
  });

  it.each([
    ["its first word", "some"],
    ["all but its last word", "some really long and complicated"],
    ["the key with one more word", `${SEED_KEY} extra`],
  ])("refuses %s, without echoing it", async (_label, presented) => {
    const err = await callError(h.client, h.client.listServices, {}, keyAuth(presented));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.details).not.toContain("some");
  });
});
