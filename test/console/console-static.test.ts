import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack } from "../support/stack.js";

const ROOT = new URL("../../", import.meta.url);

/** A GET with the request target sent exactly as given (fetch would normalize `..`). */
function rawGet(origin: string, target: string): Promise<number> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: target, method: "GET" }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the console's static files at /ui/ (issue #28)", () => {
  let server: Awaited<ReturnType<typeof startStack>>;
  beforeAll(async () => {
    server = await startStack();
  });
  afterAll(async () => {
    await server.close();
  });

  it("redirects /ui to /ui/ and serves the page there without credentials, with a policy that allows only its own import map inline", async () => {
    const redirect = await fetch(`${server.httpUrl}/ui`, { redirect: "manual" });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get("location")).toBe("/ui/");

    const page = await fetch(`${server.httpUrl}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await page.text();
    expect(html).toBe(readFileSync(new URL("console/index.html", ROOT), "utf8"));
    const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1] as string;
    const policy = page.headers.get("content-security-policy") ?? "";
    expect(policy).toContain(`script-src 'self' 'sha256-${createHash("sha256").update(importMap).digest("base64")}'`);
    expect(policy).toContain("connect-src 'self'");
    expect(policy).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("serves every file of console/ (a module added there but not to the list would fail here), byte for byte", async () => {
    const files = readdirSync(new URL("console/", ROOT));
    expect(files).toContain("app.js");
    for (const file of files) {
      const path = file === "index.html" ? "/ui/" : `/ui/${file}`;
      const res = await fetch(`${server.httpUrl}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toMatch(file.endsWith(".css") ? /^text\/css/ : file.endsWith(".js") ? /^text\/javascript/ : /^text\/html/);
      expect(Buffer.from(await res.arrayBuffer()).equals(readFileSync(new URL(`console/${file}`, ROOT))), path).toBe(true);
    }
  });

  it("serves the vendored libraries byte for byte from node_modules, with their content types", async () => {
    const vendored: [string, string, string][] = [
      ["/ui/vendor/preact.module.js", "node_modules/preact/dist/preact.module.js", "text/javascript; charset=utf-8"],
      ["/ui/vendor/hooks.module.js", "node_modules/preact/hooks/dist/hooks.module.js", "text/javascript; charset=utf-8"],
      ["/ui/vendor/htm.module.js", "node_modules/htm/dist/htm.module.js", "text/javascript; charset=utf-8"],
      ["/ui/vendor/uPlot.esm.js", "node_modules/uplot/dist/uPlot.esm.js", "text/javascript; charset=utf-8"],
      ["/ui/vendor/uPlot.min.css", "node_modules/uplot/dist/uPlot.min.css", "text/css; charset=utf-8"],
    ];
    for (const [path, file, type] of vendored) {
      const res = await fetch(`${server.httpUrl}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toBe(type);
      expect(Buffer.from(await res.arrayBuffer()).equals(readFileSync(new URL(file, ROOT))), path).toBe(true);
    }
  });

  it("answers a repeated load with 304 by its etag", async () => {
    const first = await fetch(`${server.httpUrl}/ui/vendor/htm.module.js`);
    const etag = first.headers.get("etag") as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(first.headers.get("cache-control")).toBe("no-cache");
    const again = await fetch(`${server.httpUrl}/ui/vendor/htm.module.js`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
  });

  it("serves nothing outside its list: no path from the URL reaches the filesystem", async () => {
    for (const target of [
      "/ui/index.html",
      "/ui/vendor/preact.js",
      "/ui/../package.json",
      "/ui/%2e%2e/package.json",
      "/ui/vendor/..%2f..%2fpackage.json",
      "/ui/vendor/%2e%2e%2f%2e%2e%2fpackage.json",
      "/console/index.html",
      "/ui//",
    ]) {
      expect(await rawGet(server.httpUrl, target), target).toBe(404);
    }
  });

  it("is served on the port shared with gRPC too", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/ui/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<script type="module" src="./app.js"></script>');
  });
});
