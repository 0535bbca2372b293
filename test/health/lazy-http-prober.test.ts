import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { HttpProber } from "../../src/health/http-probe.js";
import { LazyHttpProber } from "../../src/health/lazy-http-prober.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** One trip through the event loop: whatever was ready to run has run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("LazyHttpProber", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  async function health(): Promise<HealthServer> {
    const h = await startHealthServer();
    cleanup.push(() => h.close());
    return h;
  }

  it("holds probes until `after` settles, then probes for real", async () => {
    const h = await health();
    let release: () => void = () => {};
    const after = new Promise<void>((resolve) => (release = resolve));
    const prober = new LazyHttpProber({ timeoutMs: 2000 }, after);
    cleanup.push(() => prober.close());

    let settled = false;
    const target = { id: "a", host: "127.0.0.1", port: h.port, path: "/health" };
    const result = prober.probe(target).finally(() => (settled = true));
    // A whole probe round trip to the same server, started after the held one: had that one not been held, it would be out too.
    const direct = new HttpProber({ timeoutMs: 2000 });
    cleanup.push(() => direct.close());
    await expect(direct.probe(target)).resolves.toMatchObject({ ok: true });
    await turn();
    expect(settled).toBe(false);
    expect(h.requests).toHaveLength(1);

    release();
    await expect(result).resolves.toEqual({ ok: true, status: 200, data: { status: "ok" } });
    expect(h.requests).toHaveLength(2);
    // Loaded once: the next probe goes straight out.
    await expect(prober.probe({ id: "a", host: "127.0.0.1", port: h.port, path: "/health" })).resolves.toMatchObject({ ok: true });
  });

  it("answers a probe held when it closes with 'prober closed', and sends nothing", async () => {
    const h = await health();
    const prober = new LazyHttpProber({ timeoutMs: 2000 }, new Promise(() => {})); // never released
    const held = prober.probe({ id: "a", host: "127.0.0.1", port: h.port, path: "/health" });
    prober.close();
    await expect(held).resolves.toEqual({ ok: false, reason: "prober closed" });
    await expect(prober.probe({ id: "a", host: "127.0.0.1", port: h.port, path: "/health" })).resolves.toEqual({ ok: false, reason: "prober closed" });
    expect(h.requests).toHaveLength(0);
  });

  it("answers a held probe 'aborted' when its signal aborts, so a scheduler stopping before `after` settles is not kept waiting", async () => {
    const h = await health();
    const prober = new LazyHttpProber({ timeoutMs: 2000 }, new Promise(() => {})); // never released: start-up failed
    cleanup.push(() => prober.close());
    const controller = new AbortController();
    const held = prober.probe({ id: "a", host: "127.0.0.1", port: h.port, path: "/health" }, controller.signal);
    await turn();
    controller.abort();
    await expect(held).resolves.toEqual({ ok: false, reason: "aborted" });
    const aborted = AbortSignal.abort();
    await expect(prober.probe({ id: "a", host: "127.0.0.1", port: h.port, path: "/health" }, aborted)).resolves.toEqual({ ok: false, reason: "aborted" });
    expect(h.requests).toHaveLength(0);
  });

  it("refuses a bad timeout when built, not at the first probe", () => {
    expect(() => new LazyHttpProber({ timeoutMs: 0 })).toThrow(/timeoutMs must be a positive number, got 0/);
  });

  it("keeps undici out of the server's imports: it loads after the server is up", () => {
    // A fresh process, as a restart is: import what `serve` runs and list the CommonJS modules loaded.
    const out = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        'await import("./src/app/start-server.ts"); const { createRequire } = await import("node:module"); ' +
          'const loaded = Object.keys(createRequire(import.meta.url).cache); ' +
          'console.log(JSON.stringify({ undici: loaded.filter((f) => f.includes("/node_modules/undici/")).length, grpc: loaded.some((f) => f.includes("/@grpc/grpc-js/")) }));',
      ],
      { cwd: ROOT, encoding: "utf8" },
    );
    expect(out.stderr).toBe("");
    expect(JSON.parse(out.stdout.trim())).toEqual({ undici: 0, grpc: true });
  });
});
