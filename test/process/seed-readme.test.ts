import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startHealthServer, type HealthServer } from "../support/health-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The seed README's `.env`, byte for byte. */
const SEED_DOTENV = 'SERVICE_REGISTRATION_KEY="some really long and complicated string"\n';
const SEED_KEY = "some really long and complicated string";

/** A fresh copy of the project, as a user's clone after `npm install` (node_modules linked), with the seed's `.env`. */
function seedCheckout(): string {
  const dir = mkdtempSync(join(tmpdir(), "registry-seed-"));
  for (const entry of ["src", "gen", "proto", "package.json", "tsconfig.json"]) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  writeFileSync(join(dir, ".env"), SEED_DOTENV);
  return dir;
}

interface Started {
  readonly child: ChildProcess;
  readonly port: number;
  output(): string;
  readonly exited: Promise<number | string>;
}

/**
 * Runs a command line as the seed writes it, from `cwd`, with
 * node_modules/.bin on PATH (as npx gives), and resolves with the port it
 * reports serving on. PORT=0 and HTTP_PORT=0 keep parallel tests apart.
 */
async function startAsSeedSays(cwd: string, command: string[]): Promise<Started> {
  const child = spawn(command[0] as string, command.slice(1), {
    cwd,
    env: { ...process.env, PATH: `${join(cwd, "node_modules/.bin")}:${process.env.PATH ?? ""}`, PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so teardown can end the whole tree
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command.join(" ")} did not serve within 30 s:\n${out}`)), 30_000);
    const onData = (): void => {
      for (const line of out.split("\n")) {
        if (!line.startsWith("{")) continue;
        const fields = JSON.parse(line) as { port?: unknown; store?: unknown };
        if (typeof fields.port === "number" && fields.store !== undefined) {
          clearTimeout(timer);
          child.stdout?.off("data", onData);
          resolve(fields.port);
          return;
        }
      }
    };
    child.stdout?.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${command.join(" ")} exited (${code}) before serving:\n${out}`));
    });
  });
  return { child, port, output: () => out, exited };
}

/** Resolves once nothing accepts connections on `port` any more. */
async function portReleased(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (!open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} still accepts connections`);
}

/** The seed's calls against :PORT: register with the seed's body and key, read it, delete it; a wrong key gets 401. */
async function seedCalls(port: number, backend: HealthServer): Promise<void> {
  const base = `http://127.0.0.1:${port}`;
  const headers = { "Content-Type": "application/json", Authorization: `Bearer ${SEED_KEY}` };
  const posted = await fetch(`${base}/service`, {
    method: "POST",
    headers,
    body: JSON.stringify({ serviceType: "product-service", port: String(backend.port) }),
  });
  expect(posted.status, await posted.clone().text()).toBe(201);
  const { serviceId, token } = (await posted.json()) as { serviceId: string; token: string };

  const listed = await fetch(`${base}/services/product-service`, { headers });
  expect(((await listed.json()) as { instances: { id: string }[] }).instances.map((i) => i.id)).toEqual([serviceId]);
  const one = await fetch(`${base}/service/${serviceId}`, { headers: { "x-service-id": serviceId, "x-service-token": token } });
  expect(((await one.json()) as { instance: { serviceType: string } }).instance.serviceType).toBe("product-service");

  const wrong = await fetch(`${base}/service`, {
    method: "POST",
    headers: { ...headers, Authorization: "Bearer not the key at all, not at all" },
    body: JSON.stringify({ serviceType: "product-service", port: "3000" }),
  });
  expect(wrong.status).toBe(401);

  const deleted = await fetch(`${base}/service/${serviceId}`, { method: "DELETE", headers: { "x-service-id": serviceId, "x-service-token": token } });
  expect(deleted.status).toBe(200);
  const after = await fetch(`${base}/service/${serviceId}`, { headers });
  expect(after.status).toBe(404);
}

describe("the seed README's commands and calls, as written", () => {
  let backend: HealthServer;
  let running: Started | undefined;
  beforeAll(async () => {
    backend = await startHealthServer({ status: "ok" });
  });
  afterAll(async () => {
    await backend.close();
  });
  afterEach(() => {
    // Whatever is left in the process group we started, even once its leader
    // exited: nodemon can spawn a restart just as it is told to stop, and
    // that child would outlive the test.
    if (running?.child.pid) {
      try {
        process.kill(-running.child.pid, "SIGKILL");
      } catch {
        // the group is empty
      }
    }
    running = undefined;
  });

  it("`tsx src/index.ts` serves gRPC and the seed's HTTP calls on one port, with the seed's .env key", { timeout: 60_000 }, async () => {
    const cwd = seedCheckout();
    running = await startAsSeedSays(cwd, ["tsx", "src/index.ts"]);
    await seedCalls(running.port, backend);
    process.kill(running.child.pid as number, "SIGTERM");
    expect(await running.exited).toBe(0);
    await portReleased(running.port);
  });

  it("`nodemon -x tsx src/index.ts` serves the same, and restarts on a source change", { timeout: 90_000 }, async () => {
    const cwd = seedCheckout();
    running = await startAsSeedSays(cwd, ["nodemon", "-x", "tsx", "src/index.ts"]);
    await seedCalls(running.port, backend);
    // A change to a source file restarts the server: a second "serving" line appears.
    const servingLines = (): number => running?.output().split("\n").filter((l) => l.startsWith("{") && l.includes('"store"') && l.includes('"port"')).length ?? 0;
    expect(servingLines()).toBe(1);
    const restarted = new Promise<void>((resolve) => {
      const onData = (): void => {
        if (servingLines() >= 2) {
          running?.child.stdout?.off("data", onData);
          resolve();
        }
      };
      running?.child.stdout?.on("data", onData);
    });
    writeFileSync(join(cwd, "src/lib.ts"), "\n", { flag: "a" });
    await restarted;
    // The old server stopped (nodemon's restart signal is SIGTERM here, not its default
    // SIGUSR2, which the registry takes as "write a backup").
    await portReleased(running.port);
    process.kill(-(running.child.pid as number), "SIGTERM");
    await running.exited;
  });
});
