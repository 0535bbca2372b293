import { randomUUID } from "node:crypto";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventType, HealthCheck, type ListServicesResponse, type RegisterRequest } from "../../gen/registry/v1/registry.js";
import { call, callError, keyAuth, startHarness, WatchCursor, type Harness } from "../support/registry-harness.js";

/**
 * SPEC 4.1 validation on a real server: every rule rejected with
 * INVALID_ARGUMENT naming the field (and the registry left unchanged), every
 * edge that the rule allows accepted.
 */

const BASE: RegisterRequest = { serviceType: "valid", port: 8080, host: "127.0.0.1", metadata: {} };

/** `n` distinct metadata entries. */
function entries(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
}

/** A hostname of exactly `length` characters made of valid labels (≤ 63 each). */
function hostnameOfLength(length: number): string {
  const labels: string[] = [];
  let left = length;
  while (left > 0) {
    const take = Math.min(63, left);
    labels.push("a".repeat(take));
    left -= take + 1; // the dot before the next label
  }
  const host = labels.join(".");
  if (host.length !== length) throw new Error(`could not build a ${length}-char hostname`);
  return host;
}

interface Rejected {
  readonly name: string;
  readonly patch: Partial<RegisterRequest>;
  readonly field: string;
}

const rejected: Rejected[] = [
  // service_type: 1–63 chars of [a-z0-9._-], starting and ending alphanumeric
  { name: "service_type empty", patch: { serviceType: "" }, field: "service_type" },
  { name: "service_type of 64 chars", patch: { serviceType: "a".repeat(64) }, field: "service_type" },
  { name: "service_type uppercase", patch: { serviceType: "Billing" }, field: "service_type" },
  { name: "service_type all uppercase", patch: { serviceType: "API" }, field: "service_type" },
  ...[".", "-", "_"].flatMap((c) => [
    { name: `service_type starting with '${c}'`, patch: { serviceType: `${c}api` }, field: "service_type" },
    { name: `service_type ending with '${c}'`, patch: { serviceType: `api${c}` }, field: "service_type" },
  ]),
  { name: "service_type containing '/'", patch: { serviceType: "a/b" }, field: "service_type" },
  { name: "service_type containing ' '", patch: { serviceType: "a b" }, field: "service_type" },
  { name: "service_type containing ':'", patch: { serviceType: "a:b" }, field: "service_type" },
  { name: "service_type with unicode (é)", patch: { serviceType: "café" }, field: "service_type" },
  { name: "service_type with a Cyrillic look-alike", patch: { serviceType: "\u0455vc" }, field: "service_type" },
  { name: "service_type with a NUL", patch: { serviceType: "a\u0000b" }, field: "service_type" },

  // port: 1–65535 (uint32 on the wire, so larger values arrive)
  { name: "port 0", patch: { port: 0 }, field: "port" },
  { name: "port 65536", patch: { port: 65536 }, field: "port" },
  { name: "port 70000", patch: { port: 70000 }, field: "port" },
  { name: "port 4294967295 (max uint32)", patch: { port: 4294967295 }, field: "port" },

  // host: a valid IP literal or hostname
  { name: "host 'not a host!'", patch: { host: "not a host!" }, field: "host" },
  { name: "host empty (explicitly set)", patch: { host: "" }, field: "host" },
  { name: "host starting with '-'", patch: { host: "-bad.example" }, field: "host" },
  { name: "host with a label ending in '-'", patch: { host: "bad-.example" }, field: "host" },
  { name: "host with an empty label 'a..b'", patch: { host: "a..b" }, field: "host" },
  { name: "host starting with '.'", patch: { host: ".example" }, field: "host" },
  { name: "host with '_'", patch: { host: "a_b.example" }, field: "host" },
  { name: "host with a port 'svc:80'", patch: { host: "svc:80" }, field: "host" },
  { name: "host as a URL", patch: { host: "http://svc" }, field: "host" },
  { name: "host with an IPv6 zone id 'fe80::1%eth0'", patch: { host: "fe80::1%eth0" }, field: "host" },
  { name: "host with a 64-char label", patch: { host: `${"a".repeat(64)}.example` }, field: "host" },
  { name: "host of 254 chars", patch: { host: hostnameOfLength(254) }, field: "host" },
  { name: "host of 300 chars", patch: { host: hostnameOfLength(300) }, field: "host" },
  // Dotted-numeric strings that are not IPv4 literals are not hostnames either:
  // RFC 3696 §2 (a top-level label is never all-numeric) and the WHATWG URL
  // parser (`new URL("http://999.1.1.1/")` throws) agree, and getaddrinfo
  // reads "1.2.3" as 1.2.0.3. The registry could never probe them as given.
  { name: "host '999.1.1.1' (IPv4-shaped, octet out of range)", patch: { host: "999.1.1.1" }, field: "host" },
  { name: "host '10.0.0.256' (IPv4-shaped, octet out of range)", patch: { host: "10.0.0.256" }, field: "host" },
  { name: "host '1.2.3' (short IPv4 form)", patch: { host: "1.2.3" }, field: "host" },
  { name: "host with unicode", patch: { host: "bücher.example" }, field: "host" },

  // metadata: ≤ 64 entries, keys [A-Za-z0-9._/-]{1,63}, values ≤ 512 bytes
  { name: "metadata with 65 entries", patch: { metadata: entries(65) }, field: "metadata" },
  { name: "metadata key empty", patch: { metadata: { "": "v" } }, field: "metadata" },
  { name: "metadata key with a space", patch: { metadata: { "a b": "v" } }, field: "metadata" },
  { name: "metadata key of 64 chars", patch: { metadata: { ["k".repeat(64)]: "v" } }, field: "metadata" },
  { name: "metadata key with ':'", patch: { metadata: { "a:b": "v" } }, field: "metadata" },
  { name: "metadata key with unicode", patch: { metadata: { "zoné": "v" } }, field: "metadata" },
  { name: "metadata value of 513 ASCII bytes", patch: { metadata: { zone: "x".repeat(513) } }, field: "metadata" },
  {
    name: "metadata value of 257 chars / 514 bytes (é)",
    patch: { metadata: { zone: "é".repeat(257) } },
    field: "metadata",
  },
  {
    name: "metadata value of 171 chars / 513 bytes (€)",
    patch: { metadata: { zone: "€".repeat(171) } },
    field: "metadata",
  },
  {
    name: "metadata value of 129 chars / 516 bytes (emoji)",
    patch: { metadata: { zone: "🙂".repeat(129) } },
    field: "metadata",
  },

  // health_check.path: starts with '/', ≤ 256 chars, printable ASCII
  { name: "health_check.path without a leading '/'", patch: { healthCheck: HealthCheck.fromPartial({ path: "health" }) }, field: "health_check.path" },
  { name: "health_check.path of 257 chars", patch: { healthCheck: HealthCheck.fromPartial({ path: `/${"a".repeat(256)}` }) }, field: "health_check.path" },
  { name: "health_check.path with a space", patch: { healthCheck: HealthCheck.fromPartial({ path: "/a b" }) }, field: "health_check.path" },
  { name: "health_check.path with a tab", patch: { healthCheck: HealthCheck.fromPartial({ path: "/a\tb" }) }, field: "health_check.path" },
  { name: "health_check.path with a newline", patch: { healthCheck: HealthCheck.fromPartial({ path: "/a\nHost: evil" }) }, field: "health_check.path" },
  { name: "health_check.path with NUL", patch: { healthCheck: HealthCheck.fromPartial({ path: "/a\u0000" }) }, field: "health_check.path" },
  { name: "health_check.path with DEL", patch: { healthCheck: HealthCheck.fromPartial({ path: "/a\u007f" }) }, field: "health_check.path" },
  { name: "health_check.path with non-ASCII", patch: { healthCheck: HealthCheck.fromPartial({ path: "/héalth" }) }, field: "health_check.path" },
  { name: "health_check.path that is a full URL", patch: { healthCheck: HealthCheck.fromPartial({ path: "http://evil/health" }) }, field: "health_check.path" },
];

interface Accepted {
  readonly name: string;
  readonly patch: Partial<RegisterRequest>;
  /** Fields of the returned instance to check; defaults to what was sent. */
  readonly expect?: Record<string, unknown>;
}

const accepted: Accepted[] = [
  { name: "service_type of 1 char 'a'", patch: { serviceType: "a" } },
  { name: "service_type of 1 digit '7'", patch: { serviceType: "7" } },
  { name: "service_type of 63 chars", patch: { serviceType: `a${"b".repeat(61)}c` } },
  { name: "service_type 'a.b-c_d'", patch: { serviceType: "a.b-c_d" } },
  { name: "service_type '0api9'", patch: { serviceType: "0api9" } },

  { name: "port 1", patch: { port: 1 } },
  { name: "port 65535", patch: { port: 65535 } },

  { name: "host IPv4 literal", patch: { host: "10.0.0.7" } },
  { name: "host IPv6 loopback '::1'", patch: { host: "::1" } },
  { name: "host IPv6 literal '2001:db8::1'", patch: { host: "2001:db8::1" } },
  { name: "host 'svc-1.internal'", patch: { host: "svc-1.internal" } },
  { name: "host 'localhost'", patch: { host: "localhost" } },
  { name: "host single letter 'a'", patch: { host: "a" } },
  { name: "host label starting with a digit '1password.example'", patch: { host: "1password.example" } },
  { name: "host FQDN with a trailing dot", patch: { host: "svc.example.com." } },
  { name: "host punycode 'xn--bcher-kva.example'", patch: { host: "xn--bcher-kva.example" } },
  { name: "host with a 63-char label", patch: { host: `${"a".repeat(63)}.example` } },
  { name: "host of 253 chars", patch: { host: hostnameOfLength(253) } },

  { name: "metadata with 64 entries", patch: { metadata: entries(64) } },
  { name: "metadata key 'a/b.c-d_e'", patch: { metadata: { "a/b.c-d_e": "v" } } },
  { name: "metadata key of 63 chars", patch: { metadata: { ["K".repeat(63)]: "v" } } },
  { name: "metadata value empty", patch: { metadata: { zone: "" } } },
  { name: "metadata value of 512 ASCII bytes", patch: { metadata: { zone: "x".repeat(512) } } },
  { name: "metadata value of 256 chars / 512 bytes (é)", patch: { metadata: { zone: "é".repeat(256) } } },

  { name: "health_check.path '/healthz?x=1'", patch: { healthCheck: HealthCheck.fromPartial({ path: "/healthz?x=1" }) }, expect: { healthCheckPath: "/healthz?x=1" } },
  { name: "health_check.path '/'", patch: { healthCheck: HealthCheck.fromPartial({ path: "/" }) }, expect: { healthCheckPath: "/" } },
  {
    name: "health_check.path of 256 chars",
    patch: { healthCheck: HealthCheck.fromPartial({ path: `/${"a".repeat(255)}` }) },
    expect: { healthCheckPath: `/${"a".repeat(255)}` },
  },
  {
    name: "health_check.path with every printable punctuation",
    patch: { healthCheck: HealthCheck.fromPartial({ path: "/a-b_c.d~e!$&'()*+,;=:@%20/f" }) },
    expect: { healthCheckPath: "/a-b_c.d~e!$&'()*+,;=:@%20/f" },
  },
  { name: "health_check.path empty → default /health", patch: { healthCheck: HealthCheck.fromPartial({ path: "" }) }, expect: { healthCheckPath: "/health" } },
];

describe("validation (SPEC 4.1)", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
    // Something already registered, so "unchanged" is checked against a non-empty registry.
    await call(h.client, h.client.register, { ...BASE, serviceType: "existing" });
  });
  afterAll(async () => {
    await h.close();
  });

  const listServices = (): Promise<ListServicesResponse> => call(h.client, h.client.listServices, {});

  function expectInvalid(err: ServiceError, field: string): void {
    expect(err.code, err.details).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain(field);
  }

  describe("Register", () => {
    it.each(rejected.map((r) => [r.name, r.field, r] as const))("rejects %s: INVALID_ARGUMENT naming %s, registry unchanged", async (_n, field, { patch }) => {
      const before = await listServices();
      const err = await callError(h.client, h.client.register, { ...BASE, ...patch }, keyAuth());
      expectInvalid(err, field);
      const after = await listServices();
      expect(after).toEqual(before);
    });

    it.each(accepted.map((r) => [r.name, r] as const))("accepts %s", async (_n, { patch, expect: expected }) => {
      const req = { ...BASE, ...patch };
      const res = await call(h.client, h.client.register, req);
      expect(res.instance).toMatchObject({
        id: res.serviceId,
        serviceType: req.serviceType,
        port: req.port,
        host: req.host,
        metadata: req.metadata,
        ...expected,
      });
      await call(h.client, h.client.unregister, { instanceId: res.serviceId });
    });
  });

  describe("other RPCs", () => {
    const badTypes = [
      { name: "uppercase", serviceType: "Billing" },
      { name: "64 chars", serviceType: "a".repeat(64) },
      { name: "containing a slash", serviceType: "a/b" },
      { name: "ending with a dash", serviceType: "api-" },
      { name: "unicode", serviceType: "café" },
    ];

    it.each([{ name: "empty", serviceType: "" }, ...badTypes])(
      "GetByType with a service_type $name → INVALID_ARGUMENT naming service_type",
      async ({ serviceType }) => {
        const err = await callError(h.client, h.client.getByType, { serviceType, includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth());
        expectInvalid(err, "service_type");
      },
    );

    it.each(badTypes)("WatchInstances with a service_type $name → INVALID_ARGUMENT naming service_type", async ({ serviceType }) => {
      const cursor = WatchCursor.open(h.client, { serviceType });
      await expect(cursor.next(3000)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
      expectInvalid(cursor.error as ServiceError, "service_type");
    });

    const badSelectors: { name: string; selector: Record<string, string>; field: string }[] = [
      { name: "a key with a space", selector: { "bad key": "x" }, field: "selector" },
      { name: "an empty key", selector: { "": "x" }, field: "selector" },
      { name: "a 64-char key", selector: { ["k".repeat(64)]: "x" }, field: "selector" },
      { name: "a 513-byte value", selector: { zone: "é".repeat(256) + "x" }, field: "selector.zone" },
      { name: "65 entries", selector: entries(65), field: "selector" },
    ];

    it.each(badSelectors)("GetByType with $name in its selector → INVALID_ARGUMENT naming $field", async ({ selector, field }) => {
      const err = await callError(h.client, h.client.getByType, { serviceType: "existing", includeUnhealthy: true, includeDraining: false, selector }, keyAuth());
      expectInvalid(err, field);
      expect(err.details).toMatch(new RegExp(`^${field.replace(".", "\\.")}: `));
    });

    it.each(badSelectors)("WatchInstances with $name in its selector → INVALID_ARGUMENT naming $field", async ({ selector, field }) => {
      const cursor = WatchCursor.open(h.client, { serviceType: "existing", selector });
      await expect(cursor.next(3000)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
      expectInvalid(cursor.error as ServiceError, field);
    });

    it("keeps a map key named __proto__ (a valid key) in metadata and selectors: not dropped on the way in, so it selects", async () => {
      // The generated decoder's `map[key] = value` would drop it: the selector would arrive empty and select everything.
      const proto = (value: string) => JSON.parse(`{"__proto__": "${value}"}`) as Record<string, string>;
      const marked = await call(h.client, h.client.register, { serviceType: "proto-keys", port: 80, host: "10.0.0.1", metadata: proto("x") }, keyAuth());
      await call(h.client, h.client.register, { serviceType: "proto-keys", port: 81, host: "10.0.0.1", metadata: {} }, keyAuth());
      expect(Object.getOwnPropertyDescriptor(h.registry.getInstance(marked.serviceId).metadata, "__proto__")?.value).toBe("x");
      const selected = await call(h.client, h.client.getByType, { serviceType: "proto-keys", includeUnhealthy: true, includeDraining: false, selector: proto("x") }, keyAuth());
      expect(selected.instances.map((i) => i.id)).toEqual([marked.serviceId]);
      const none = await call(h.client, h.client.getByType, { serviceType: "proto-keys", includeUnhealthy: true, includeDraining: false, selector: proto("y") }, keyAuth());
      expect(none.instances).toEqual([]);
      const cursor = WatchCursor.open(h.client, { serviceType: "proto-keys", selector: proto("x") });
      const first = await cursor.next(3000);
      expect(first.instance?.id).toBe(marked.serviceId);
      expect((await cursor.next(3000)).type).toBe(EventType.EVENT_TYPE_SYNCED);
      cursor.cancel();
    });

    it("accepts a selector at the limits: 64 entries, 63-char keys, 512-byte values", async () => {
      const selector = { ...entries(63), ["k".repeat(63)]: "é".repeat(256) };
      const res = await call(h.client, h.client.getByType, { serviceType: "existing", includeUnhealthy: true, includeDraining: false, selector });
      expect(res.instances).toEqual([]);
    });

    it("WatchInstances with an empty service_type watches everything", async () => {
      const cursor = WatchCursor.open(h.client, { serviceType: "" });
      try {
        const first = await cursor.next(3000);
        expect(first.instance?.serviceType).toBe("existing");
      } finally {
        cursor.cancel();
      }
    });

    it.each([
      { name: "empty", instanceId: "" },
      { name: "of 129 chars", instanceId: "x".repeat(129) },
    ])("GetInstance with an instance_id $name → INVALID_ARGUMENT naming instance_id", async ({ instanceId }) => {
      const err = await callError(h.client, h.client.getInstance, { instanceId }, keyAuth());
      expectInvalid(err, "instance_id");
    });

    it.each([
      { name: "empty", instanceId: "" },
      { name: "of 129 chars", instanceId: "x".repeat(129) },
    ])("Unregister with an instance_id $name → INVALID_ARGUMENT naming instance_id", async ({ instanceId }) => {
      const before = await listServices();
      const err = await callError(h.client, h.client.unregister, { instanceId }, keyAuth());
      expectInvalid(err, "instance_id");
      expect(await listServices()).toEqual(before);
    });

    it("GetInstance of an unknown id → NOT_FOUND", async () => {
      const err = await callError(h.client, h.client.getInstance, { instanceId: randomUUID() }, keyAuth());
      expect(err.code, err.details).toBe(status.NOT_FOUND);
    });

    it("Unregister of an unknown id with the key → NOT_FOUND, registry unchanged", async () => {
      const before = await listServices();
      const err = await callError(h.client, h.client.unregister, { instanceId: randomUUID() }, keyAuth());
      expect(err.code, err.details).toBe(status.NOT_FOUND);
      expect(await listServices()).toEqual(before);
    });

    it("names an unknown id the same way in every NOT_FOUND: quoted, control characters escaped, cut at 64 characters (an id of up to 128, as Drain allows)", async () => {
      const odd = `a\u0000b\n${"x".repeat(100)}`;
      const quoted = JSON.stringify(odd.slice(0, 64));
      const get = await callError(h.client, h.client.getInstance, { instanceId: odd }, keyAuth());
      const unregister = await callError(h.client, h.client.unregister, { instanceId: odd }, keyAuth());
      const drain = await callError(h.client, h.client.drain, { instanceId: odd }, keyAuth());
      for (const err of [get, unregister, drain]) {
        expect(err.code, err.details).toBe(status.NOT_FOUND);
        expect(err.details).toBe(`instance ${quoted} not found`);
      }
    });
  });
});
