import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, callError, instanceAuth, keyAuth, WatchCursor } from "../support/registry-harness.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

const KEY_A = "rotation-test-key-A-0123456789abcdef";
const KEY_B = "rotation-test-key-B-0123456789abcdef";

/** Resolves with the first log line whose msg is `msg` after `from` characters of output, waiting on the process's output. */
function logLine(server: ServerProcess, msg: string, from = 0, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const find = (): boolean => {
      const line = server.output().slice(from).split("\n").find((l) => l.includes(`"msg":"${msg}`));
      if (!line) return false;
      clearTimeout(timer);
      server.child.stdout?.off("data", onData);
      resolve(JSON.parse(line) as Record<string, unknown>);
      return true;
    };
    const onData = (): void => void find();
    const timer = setTimeout(() => {
      server.child.stdout?.off("data", onData);
      reject(new Error(`no "${msg}" log line within ${timeoutMs} ms:\n${server.output()}`));
    }, timeoutMs);
    if (!find()) server.child.stdout?.on("data", onData);
  });
}

/** Waits for a watch cursor to have delivered its SYNCED (the stream is open and authenticated). */
async function synced(cursor: WatchCursor): Promise<void> {
  for (;;) if ((await cursor.next()).type === EventType.EVENT_TYPE_SYNCED) return;
}

const servers: ServerProcess[] = [];
const clients: RegistryServiceClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) {
    s.kill("SIGKILL");
    await s.exited;
  }
});

async function serve(env: Record<string, string | undefined>, cwd: string): Promise<{ server: ServerProcess; client: RegistryServiceClient }> {
  const server = await startServerProcess({ STORE: "memory", HEALTH_CHECKS: "false", SERVICE_REGISTRATION_KEY: undefined, ...env }, [], { cwd });
  servers.push(server);
  const client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  clients.push(client);
  return { server, client };
}

describe("registration key rotation without a restart", () => {
  it("SIGHUP reloads the keys from .env: a removed key stops at once, its streams end UNAUTHENTICATED, tokens stay", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "registry-rotation-"));
    writeFileSync(join(cwd, ".env"), `SERVICE_REGISTRATION_KEY=${KEY_A},${KEY_B}\n`);
    const { server, client } = await serve({}, cwd);

    const reg = await call(client, client.register, { serviceType: "api", port: 8080, host: "10.0.0.1", metadata: {} }, keyAuth(KEY_B));
    const keyBStream = WatchCursor.open(client, {}, keyAuth(KEY_B));
    const keyAStream = WatchCursor.open(client, {}, keyAuth(KEY_A));
    const instanceStream = WatchCursor.open(client, {}, instanceAuth(reg.serviceId, reg.token));
    await Promise.all([synced(keyBStream), synced(keyAStream), synced(instanceStream)]);

    writeFileSync(join(cwd, ".env"), `SERVICE_REGISTRATION_KEY=${KEY_A}\n`);
    const before = server.output().length;
    process.kill(server.child.pid as number, "SIGHUP");

    const ended = await keyBStream.status();
    expect(ended.code).toBe(status.UNAUTHENTICATED);
    expect(ended.details).toBe("the registration key that opened this stream was removed");
    const line = await logLine(server, "registration keys reloaded", before);
    expect(line).toMatchObject({ keys: 1, added: 0, removed: 1, keySource: "dotenv" });

    expect((await callError(client, client.listServices, {}, keyAuth(KEY_B))).code).toBe(status.UNAUTHENTICATED);
    expect((await callError(client, client.register, { serviceType: "api", port: 8081, host: "10.0.0.1", metadata: {} }, keyAuth(KEY_B))).code).toBe(
      status.UNAUTHENTICATED,
    );
    // The kept key, the instance registered with the removed key, and the streams they opened go on.
    await call(client, client.register, { serviceType: "web", port: 9090, host: "10.0.0.2", metadata: {} }, keyAuth(KEY_A));
    expect((await keyAStream.next()).instance?.serviceType).toBe("web");
    expect((await instanceStream.next()).instance?.serviceType).toBe("web");
    const self = await call(client, client.getInstance, { instanceId: reg.serviceId }, instanceAuth(reg.serviceId, reg.token));
    expect(self.instance?.id).toBe(reg.serviceId);

    // A configuration that no longer parses keeps the current keys (and the process).
    writeFileSync(join(cwd, ".env"), "SERVICE_REGISTRATION_KEY=short\n");
    const beforeBad = server.output().length;
    process.kill(server.child.pid as number, "SIGHUP");
    await logLine(server, "registration keys not reloaded", beforeBad);
    await call(client, client.listServices, {}, keyAuth(KEY_A));

    const output = server.output();
    for (const secret of [KEY_A, KEY_B, reg.token]) expect(output).not.toContain(secret);
  });

  it("a change of the generated key file reloads it, no signal needed", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "registry-rotation-"));
    const { server, client } = await serve({ DATA_DIR: join(cwd, "data") }, cwd);
    const keyFile = join(cwd, "data", "registration-key");
    const generated = readFileSync(keyFile, "utf8").trim();
    const stream = WatchCursor.open(client, {}, keyAuth(generated));
    await synced(stream);

    // Replaced by rename, as an editor or `mv` would.
    writeFileSync(`${keyFile}.new`, `${KEY_A}\n`, { mode: 0o600 });
    renameSync(`${keyFile}.new`, keyFile);

    expect((await stream.status()).code).toBe(status.UNAUTHENTICATED);
    expect(await logLine(server, "registration keys reloaded")).toMatchObject({ keys: 1, added: 1, removed: 1, keySource: "file" });
    expect((await callError(client, client.listServices, {}, keyAuth(generated))).code).toBe(status.UNAUTHENTICATED);
    await call(client, client.listServices, {}, keyAuth(KEY_A));
    expect(server.output()).not.toContain(generated);
  });
});
