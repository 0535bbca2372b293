import { request } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { credentials, status } from "@grpc/grpc-js";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { AuthFailureLimiter } from "../../src/api/auth-failure-limiter.js";
import { addressGroup } from "../../src/api/peer-address.js";
import { startServer, type RunningServer } from "../../src/app/start-server.js";
import { loadConfig } from "../../src/config/load-config.js";
import { call, callError, keyAuth, TEST_KEY } from "../support/registry-harness.js";

/** A logger whose JSON lines land in `lines`. */
function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split("\n").filter((l) => l !== ""));
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), lines };
}

async function start(env: Record<string, string>, logger: pino.Logger): Promise<RunningServer> {
  const cwd = mkdtempSync(join(tmpdir(), "registry-auth-"));
  const config = loadConfig({
    cwd,
    argv: [],
    env: { PORT: "0", HOST: "127.0.0.1", STORE: "memory", DATA_DIR: join(cwd, "data"), HEALTH_CHECKS: "false", SHUTDOWN_GRACE_MS: "500", ...env },
  });
  return startServer(config, logger, { httpPort: 0 });
}

/** An HTTP request to the JSON API from `localAddress` (another loopback address is another caller). */
function httpGet(port: number, path: string, headers: Record<string, string>, localAddress: string): Promise<{ status: number; body: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers, localAddress, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers["retry-after"] }));
    });
    req.on("error", reject);
    req.end();
  });
}

function counter(exposition: string, kind: string): number {
  const line = exposition.split("\n").find((l) => l.startsWith(`registry_auth_failures_total{kind="${kind}"}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

let server: RunningServer | undefined;
let client: RegistryServiceClient | undefined;
afterEach(async () => {
  client?.close();
  await server?.close();
  server = client = undefined;
});

describe("failed authentications are rate-limited per address", () => {
  it("refuses an address over its burst without checking, on gRPC and HTTP alike, and counts and logs it", async () => {
    const { logger, lines } = capturingLogger();
    // One failure a minute after a burst of 5: nothing refills within the test.
    server = await start({ SERVICE_REGISTRATION_KEY: TEST_KEY, AUTH_FAILURES_PER_MINUTE: "1", AUTH_FAILURE_BURST: "5" }, logger);
    client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    const wrongKey = "wrong-registration-key-guess-0001";

    // Successful calls take nothing from the bucket.
    for (let i = 0; i < 20; i++) await call(client, client.listServices, {});

    for (let i = 0; i < 5; i++) {
      expect((await callError(client, client.listServices, {}, keyAuth(wrongKey))).code).toBe(status.UNAUTHENTICATED);
    }
    const limited = await callError(client, client.listServices, {}, keyAuth(wrongKey));
    expect(limited.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(limited.details).toMatch(/too many failed authentications from this address; retry in \d+ s/);
    // The right key is not even checked now: a guess made over the limit tells nothing.
    expect((await callError(client, client.listServices, {}, keyAuth())).code).toBe(status.RESOURCE_EXHAUSTED);
    // The same address over HTTP shares the bucket.
    const httpPort = server.httpPort as number;
    const sameAddress = await httpGet(httpPort, "/services", { authorization: `Bearer ${TEST_KEY}` }, "127.0.0.1");
    expect(sameAddress.status).toBe(429);
    // Retry-After (RFC 9110) says in seconds what the message says: an HTTP client can honour it.
    const wait = /retry in (\d+) s/.exec(sameAddress.body)?.[1];
    expect(wait).toBeDefined();
    expect(sameAddress.retryAfter).toBe(wait);

    // Another address is not affected, and has its own bucket (wrong tokens count too).
    expect((await httpGet(httpPort, "/services", { authorization: `Bearer ${TEST_KEY}` }, "127.0.0.2")).status).toBe(200);
    const wrongToken = { "x-service-id": "00000000-0000-4000-8000-000000000000", "x-service-token": "not-a-token-at-all-xyz" };
    for (let i = 0; i < 5; i++) expect((await httpGet(httpPort, "/services", wrongToken, "127.0.0.2")).status).toBe(401);
    expect((await httpGet(httpPort, "/services", wrongToken, "127.0.0.2")).status).toBe(429);

    const exposition = await server.metrics.exposition();
    expect(counter(exposition, "key")).toBe(5);
    expect(counter(exposition, "token")).toBe(5);
    expect(counter(exposition, "rate_limited")).toBe(4);

    const warnings = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.msg).startsWith("failed authentications"));
    // The first failure of each address is logged at once; the rest wait for the minute.
    expect(warnings.map((w) => [w.address, w.failures])).toEqual([
      ["127.0.0.1", 1],
      ["127.0.0.2", 1],
    ]);
    const all = lines.join("\n");
    expect(all).not.toContain(wrongKey);
    expect(all).not.toContain(TEST_KEY);
    expect(all).not.toContain(wrongToken["x-service-token"]);
  });

  it("AUTH_FAILURES_PER_MINUTE=0 turns the limit off", async () => {
    server = await start({ SERVICE_REGISTRATION_KEY: TEST_KEY, AUTH_FAILURES_PER_MINUTE: "0", AUTH_FAILURE_BURST: "1" }, pino({ level: "silent" }));
    client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    for (let i = 0; i < 5; i++) {
      expect((await callError(client, client.listServices, {}, keyAuth("wrong-registration-key-guess-0001"))).code).toBe(status.UNAUTHENTICATED);
    }
    await call(client, client.listServices, {});
  });
});

describe("registration keys shorter than 32 characters", () => {
  it("start with a warning that says how to make a strong key, never quoting it", async () => {
    const { logger, lines } = capturingLogger();
    const shortKey = "only-twenty-chars-ab";
    server = await start({ SERVICE_REGISTRATION_KEY: `${shortKey},${TEST_KEY}` }, logger);
    const warning = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg.includes("shorter than 32"));
    expect(warning?.level).toBe(40);
    expect(warning?.msg).toContain("1 of 2 registration key(s)");
    expect(warning?.msg).toContain("keygen");
    expect(lines.join("\n")).not.toContain(shortKey);
  });

  it("start without it when every key is long enough", async () => {
    const { logger, lines } = capturingLogger();
    server = await start({ SERVICE_REGISTRATION_KEY: TEST_KEY }, logger);
    expect(lines.some((l) => l.includes("shorter than 32"))).toBe(false);
  });
});

describe("AuthFailureLimiter", () => {
  it("logs an address once per interval with the count since its last line", () => {
    const { logger, lines } = capturingLogger();
    let now = 1_000_000;
    const limiter = new AuthFailureLimiter({ failuresPerMinute: 600, burst: 100, logger, now: () => now });
    limiter.failed("10.0.0.1");
    for (let i = 0; i < 9; i++) {
      now += 1000;
      limiter.failed("10.0.0.1");
    }
    expect(lines).toHaveLength(1);
    now += 60_000;
    limiter.failed("10.0.0.1");
    limiter.close();
    expect(lines.map((l) => (JSON.parse(l) as { failures: number }).failures)).toEqual([1, 10]);
  });

  it("logs at most 100 addresses one by one per interval, then the rest together in one line", () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const { logger, lines } = capturingLogger();
      const limiter = new AuthFailureLimiter({ failuresPerMinute: 60, burst: 10, logger, now: () => Date.now() });
      // One guess from each of 150 /64s, as from a /48, then three more from the last one.
      const spray = (i: number) => `2001:db8:0:${i.toString(16)}::1`;
      for (let i = 0; i < 150; i++) limiter.failed(spray(i));
      for (let i = 0; i < 3; i++) limiter.failed(spray(149));
      const parsed = () => lines.map((l) => JSON.parse(l) as { msg: string; address?: string; addresses?: number; failures: number });
      expect(parsed().map((l) => l.address)).toEqual(Array.from({ length: 100 }, (_, i) => `${spray(i).replace(/::1$/, "")}::/64`));
      vi.advanceTimersByTime(60_000); // the sweep: the interval is over
      // The 50 first guesses left out, together; then, in the new interval, the last address's later three on its own line.
      expect(parsed().slice(100)).toEqual([
        expect.objectContaining({ msg: expect.stringContaining("more addresses than are logged one by one"), addresses: 50, failures: 50, rateLimited: 0 }),
        expect.objectContaining({ address: "2001:db8:0:95::/64", failures: 3 }),
      ]);
      // A new interval logs addresses one by one again.
      limiter.failed("10.0.0.1");
      expect(parsed().at(-1)).toMatchObject({ address: "10.0.0.1", failures: 1 });
      limiter.close();
      // What an interval left out is logged at close, not lost.
      const closing = new AuthFailureLimiter({ failuresPerMinute: 60, burst: 10, logger, now: () => Date.now() });
      for (let i = 0; i < 101; i++) closing.failed(spray(1000 + i));
      closing.close();
      expect(parsed().at(-1)).toMatchObject({ msg: expect.stringContaining("more addresses than are logged one by one"), addresses: 1, failures: 1 });
    } finally {
      vi.useRealTimers();
    }
  });

  it("flushes the counts of an address that went quiet, then forgets it once refilled", () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const { logger, lines } = capturingLogger();
      const limiter = new AuthFailureLimiter({ failuresPerMinute: 60, burst: 10, logger, now: () => Date.now() });
      for (let i = 0; i < 6; i++) limiter.failed("10.0.0.1");
      expect(lines).toHaveLength(1);
      vi.advanceTimersByTime(60_000);
      expect(lines.map((l) => (JSON.parse(l) as { failures: number }).failures)).toEqual([1, 5]);
      vi.advanceTimersByTime(60_000);
      expect(limiter.size).toBe(0);
      limiter.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it("refills at the configured rate", () => {
    let now = 0;
    const limiter = new AuthFailureLimiter({ failuresPerMinute: 60, burst: 2, now: () => now });
    limiter.failed("10.0.0.1");
    limiter.failed("10.0.0.1");
    expect(limiter.limited("10.0.0.1")).toBe(true);
    expect(limiter.retryAfterMs("10.0.0.1")).toBe(1000);
    now += 1000;
    expect(limiter.limited("10.0.0.1")).toBe(false);
    limiter.close();
  });

  it("tracks at most maxAddresses addresses", () => {
    const limiter = new AuthFailureLimiter({ failuresPerMinute: 1, burst: 1, maxAddresses: 3 });
    for (let i = 0; i < 50; i++) limiter.failed(`10.0.0.${i}`);
    expect(limiter.size).toBe(3);
    expect(limiter.limited("10.0.0.49")).toBe(true);
    expect(limiter.limited("10.0.0.0")).toBe(false); // forgotten
    limiter.close();
  });

  it("groups IPv6 callers by /64", () => {
    expect(addressGroup("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(addressGroup("2001:0db8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(addressGroup("::1")).toBe("0:0:0:0::/64");
    expect(addressGroup("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressGroup("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
    expect(addressGroup("192.0.2.7")).toBe("192.0.2.7");
    expect(addressGroup(undefined)).toBe("unknown");
  });
});
