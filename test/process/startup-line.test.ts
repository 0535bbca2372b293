import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { servingLine, startServerProcess, tempDataDir, type ServerProcess } from "../support/server-process.js";

const ENV_KEY = "startup-line-env-registration-key-0001";
const DOTENV_KEY = "startup-line-dotenv-registration-key-02";
const FLAG_KEY = "startup-line-flag-registration-key-0003";

/** The start-up line's last part: where the key came from. */
function keyPart(server: ServerProcess): string {
  const line = servingLine(server.output());
  expect(line, server.output()).toBeDefined();
  return /; ((?:key|\d+ keys) .*)$/.exec(line?.msg ?? "")?.[1] ?? "";
}

describe("the start-up line says where the registration key came from, never the key", () => {
  let server: ServerProcess | undefined;
  afterEach(() => server?.kill("SIGKILL"));

  it("SERVICE_REGISTRATION_KEY in the environment", async () => {
    server = await startServerProcess({ STORE: "memory", SERVICE_REGISTRATION_KEY: ENV_KEY });
    expect(keyPart(server)).toBe("key from SERVICE_REGISTRATION_KEY in the environment");
    expect(servingLine(server.output())).toMatchObject({ keySource: "environment" });
    expect(server.output()).not.toContain(ENV_KEY);
  });

  it("SERVICE_REGISTRATION_KEY in .env, named by its path", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "registry-dotenv-"));
    writeFileSync(join(cwd, ".env"), `SERVICE_REGISTRATION_KEY=${DOTENV_KEY},${ENV_KEY}\n`);
    server = await startServerProcess({ STORE: "memory", SERVICE_REGISTRATION_KEY: undefined }, [], { cwd });
    expect(keyPart(server)).toBe(`2 keys from SERVICE_REGISTRATION_KEY in ${join(cwd, ".env")}`);
    expect(servingLine(server.output())).toMatchObject({ keySource: "dotenv", keySourceFile: join(cwd, ".env") });
    expect(server.output()).not.toContain(DOTENV_KEY);
    expect(server.output()).not.toContain(ENV_KEY);
  });

  it("the --service-registration-key flag, over the environment", async () => {
    server = await startServerProcess({ STORE: "memory", SERVICE_REGISTRATION_KEY: ENV_KEY }, ["--service-registration-key", FLAG_KEY]);
    expect(keyPart(server)).toBe("key from --service-registration-key");
    expect(server.output()).not.toContain(FLAG_KEY);
  });

  it("the key file it generated in DATA_DIR, then the same file on the next start", async () => {
    const dataDir = tempDataDir();
    const path = join(dataDir, "registration-key");
    server = await startServerProcess({ DATA_DIR: dataDir, SERVICE_REGISTRATION_KEY: undefined });
    expect(keyPart(server)).toBe(`key generated into ${path}, where services read it (no SERVICE_REGISTRATION_KEY set)`);
    expect(servingLine(server.output())).toMatchObject({ keySource: "generated", keySourceFile: path });
    const key = readFileSync(path, "utf8").trim();
    expect(server.output()).not.toContain(key);
    server.kill("SIGTERM");
    expect(await server.exited).toBe(0);

    server = await startServerProcess({ DATA_DIR: dataDir, SERVICE_REGISTRATION_KEY: undefined });
    expect(keyPart(server)).toBe(`key from the key file ${path}`);
    expect(servingLine(server.output())).toMatchObject({ keySource: "file", keySourceFile: path });
    expect(server.output()).not.toContain(key);
  });
});
