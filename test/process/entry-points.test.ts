import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Runs `code` as an ES module in a fresh Node process from the repository root and returns its stdout. */
function runModule(code: string, tsx = true): { stdout: string; stderr: string; status: number | null } {
  const out = spawnSync(process.execPath, [...(tsx ? ["--import", "tsx"] : []), "--input-type=module", "-e", code], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 20_000,
  });
  return { stdout: out.stdout, stderr: out.stderr, status: out.status };
}

/** Prints which of the server-side CommonJS packages the process has loaded so far. */
const LOADED_SERVER_PACKAGES =
  'const { createRequire } = await import("node:module"); ' +
  "const loaded = Object.keys(createRequire(import.meta.url).cache); " +
  'console.log(JSON.stringify(["better-sqlite3", "etcd3", "pino", "prom-client", "undici"].filter((p) => loaded.some((f) => f.includes(`/node_modules/${p}/`)))));';

describe("entry points", () => {
  it("importing the library starts nothing: the process exits by itself, having served nothing", () => {
    const out = runModule(
      'const lib = await import("./src/lib.ts"); console.log(typeof lib.ServiceRegistry, typeof lib.startServer);',
    );
    expect(out.stderr).toBe("");
    expect(out.status).toBe(0);
    expect(out.stdout.trim()).toBe("function function");
  });

  it("the client SDK (src/client) loads no store, logger or metrics package", () => {
    const out = runModule(`const sdk = await import("./src/client/index.ts"); console.log(typeof sdk.RegistryClient); ${LOADED_SERVER_PACKAGES}`);
    expect(out.stderr).toBe("");
    expect(out.stdout.trim().split("\n")).toEqual(["function", "[]"]);
  });

  // `npm install` builds dist/ (the `prepare` script), so the package's own
  // name resolves as a user's code would import it.
  it("resolves 'service-registry' and 'service-registry/client' as an installed package does", () => {
    const out = runModule(
      'const lib = await import("service-registry"); const sdk = await import("service-registry/client"); ' +
        "console.log(typeof lib.ServiceRegistry, typeof sdk.RegistryClient, typeof sdk.ServiceRegistry);",
      false,
    );
    expect(existsSync(`${ROOT}dist/src/lib.js`), "dist/ is built by `npm install` (prepare)").toBe(true);
    expect(out.stderr).toBe("");
    expect(out.stdout.trim()).toBe("function function undefined");
  });

  it("the client subpath, as installed, loads no store either", () => {
    expect(existsSync(`${ROOT}dist/src/client/index.js`), "dist/ is built by `npm install` (prepare)").toBe(true);
    const out = runModule(`await import("service-registry/client"); ${LOADED_SERVER_PACKAGES}`, false);
    expect(out.stderr).toBe("");
    expect(out.stdout.trim()).toBe("[]");
  });
});
