import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, loadConfigWithOrigins } from "../../src/config/load-config.js";
import { runCli, startServerProcess, tempDataDir, type ServerProcess } from "../support/server-process.js";

describe("configuration", () => {
  it("takes defaults, then .env, then the environment, then flags", () => {
    const cwd = mkdtempSync(join(tmpdir(), "registry-env-"));
    writeFileSync(join(cwd, ".env"), "PORT=4100\nHEALTH_CHECK_INTERVAL_MS=7000\nLOG_LEVEL=debug\n");
    const config = loadConfig({
      cwd,
      env: { HEALTH_CHECK_INTERVAL_MS: "8000", LOG_LEVEL: "warn" },
      argv: ["--log-level", "error", "--deregister-after-ms=0"],
    });
    expect(config.port).toBe(4100);
    expect(config.healthCheckIntervalMs).toBe(8000);
    expect(config.logLevel).toBe("error");
    expect(config.deregisterAfterMs).toBe(0);
    expect(config.host).toBe("0.0.0.0");
    expect(config.healthChecks).toBe(true);
  });

  it("defaults the lifecycle guards to the documented figures: 60 s drain, 60 % of at least 10 instances in 2 types, 50 % panic", () => {
    const config = loadConfig({ cwd: mkdtempSync(join(tmpdir(), "registry-env-")), env: {}, argv: [] });
    expect(config.drainTimeoutMs).toBe(60_000);
    expect(config.massFailureThresholdPercent).toBe(60);
    expect(config.massFailureMinInstances).toBe(10);
    expect(config.massFailureMinServiceTypes).toBe(2);
    expect(config.panicThresholdPercent).toBe(50);
  });

  it("refuses a .env that is not a small regular file (a device, a FIFO, something huge) instead of hanging or filling memory", () => {
    const at = (setup: (path: string) => void) => {
      const cwd = mkdtempSync(join(tmpdir(), "registry-env-"));
      setup(join(cwd, ".env"));
      return () => loadConfig({ cwd, env: {}, argv: [] });
    };
    expect(at((p) => symlinkSync("/dev/zero", p))).toThrow(/\.env is not a regular file/);
    expect(at((p) => execFileSync("mkfifo", [p]))).toThrow(/\.env is not a regular file/);
    expect(at((p) => writeFileSync(p, `PORT=4100\n# ${"x".repeat(2 * 1024 * 1024)}\n`))).toThrow(/\.env is larger than 1 MiB/);
  });

  it("says which layer each setting came from", () => {
    const cwd = mkdtempSync(join(tmpdir(), "registry-env-"));
    writeFileSync(join(cwd, ".env"), "PORT=4100\nHOST=127.0.0.1\nSTORE=memory\nHEALTH_CHECKS=false\n");
    const { config, origins } = loadConfigWithOrigins({ cwd, env: { HOST: "::1", STORE: "" }, argv: ["--health-checks", "true"] });
    expect(config).toMatchObject({ port: 4100, host: "::1", store: "sqlite", healthChecks: true });
    expect(origins).toMatchObject({
      port: { from: "dotenv", path: join(cwd, ".env") },
      host: { from: "environment" },
      store: { from: "default" }, // set but empty: unset, and .env hidden
      healthChecks: { from: "flag" },
      logLevel: { from: "default" },
    });
  });

  it.each([
    [{ PORT: "70000" }, [], /^PORT \(--port\) must be between 0 and 65535/],
    [{ HEALTH_CHECK_INTERVAL_MS: "soon" }, [], /^HEALTH_CHECK_INTERVAL_MS .* must be a whole number/],
    [{ HEALTH_CHECKS: "maybe" }, [], /^HEALTH_CHECKS .* must be true or false/],
    [{ STORE: "mongo" }, [], /^STORE .* must be one of/],
    [{}, ["--no-such-flag", "1"], /unknown option "--no-such-flag"/],
    [{}, ["--port"], /--port needs a value/],
  ])("rejects %j %j with a message naming the setting", (env, argv, message) => {
    expect(() => loadConfig({ env, argv, cwd: tmpdir() })).toThrow(ConfigError);
    expect(() => loadConfig({ env, argv, cwd: tmpdir() })).toThrow(message);
  });

  it("stops start-up with one line naming the setting and exit code 2", async () => {
    const { code, stdout, stderr } = await runCli(["serve"], { HEALTH_CHECK_TTL_MS: "-5", DATA_DIR: tempDataDir() });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/HEALTH_CHECK_TTL_MS/);
  });

  it("stops start-up with one line and exit code 2 when etcd cannot be reached (the etcd store loaded on demand)", async () => {
    const { code, stdout, stderr } = await runCli(["serve"], {
      STORE: "etcd",
      ETCD_ENDPOINTS: "http://127.0.0.1:1",
      SERVICE_REGISTRATION_KEY: "startup-test-registration-key-01",
      DATA_DIR: tempDataDir(),
    });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/^service-registry: cannot reach etcd at http:\/\/127\.0\.0\.1:1/);
  }, 30_000);

  it("refuses a short key, says how to make one, and never prints it", async () => {
    const key = "short-key-123";
    const { code, stderr } = await runCli(["serve"], { SERVICE_REGISTRATION_KEY: `a-long-enough-key-0001,${key}`, DATA_DIR: tempDataDir() });
    expect(code).toBe(2);
    expect(stderr).toMatch(/at least 16 characters/);
    expect(stderr).toMatch(/keygen/);
    expect(stderr).not.toContain(key);
    expect(stderr).not.toContain("a-long-enough-key-0001");
  });

  it("keygen prints a fresh 32-byte base64url key", async () => {
    const a = await runCli(["keygen"]);
    const b = await runCli(["keygen"]);
    expect(a.code).toBe(0);
    expect(Buffer.from(a.stdout.trim(), "base64url")).toHaveLength(32);
    expect(a.stdout).not.toBe(b.stdout);
  });
});

describe("generated registration key", () => {
  let server: ServerProcess | undefined;
  afterEach(() => server?.kill("SIGKILL"));

  it("is generated into the data directory with mode 0600, logged by path only, and reused", async () => {
    const dataDir = tempDataDir();
    server = await startServerProcess({ DATA_DIR: dataDir });
    const path = join(dataDir, "registration-key");
    const key = readFileSync(path, "utf8").trim();
    expect(key.length).toBeGreaterThanOrEqual(16);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(server.output()).toContain(path);
    expect(server.output()).not.toContain(key);
    server.kill();
    expect(await server.exited).toBe(0);

    server = await startServerProcess({ DATA_DIR: dataDir });
    expect(readFileSync(path, "utf8").trim()).toBe(key);
  });
});
