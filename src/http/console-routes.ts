import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HttpError } from "./http-errors.js";
import type { Route, RouteResponse } from "./routes.js";

/** Where a console file comes from: the repository's `console/` folder, or a package in node_modules. */
type Source = { readonly console: string } | { readonly pkg: string; readonly file: string };

/** One file the console serves, at its fixed URL path. */
interface ConsoleFile {
  readonly path: string;
  readonly source: Source;
}

/**
 * Every file `/ui/` serves: a fixed list, so nothing from a request's URL
 * ever reaches the filesystem. The console's own modules (plain ES modules,
 * no build step) and the libraries it imports, straight from node_modules and
 * named in index.html's import map.
 */
const FILES: readonly ConsoleFile[] = [
  { path: "/ui/", source: { console: "index.html" } },
  ...[
    "app.js", "html.js", "api.js", "live.js", "store.js", "format.js", "virtual-list.js", "charts.js",
    "services-view.js", "service-view.js", "event-log.js", "confirm-dialog.js", "style.css",
  ].map(
    (name) => ({ path: `/ui/${name}`, source: { console: name } }),
  ),
  { path: "/ui/vendor/preact.module.js", source: { pkg: "preact", file: "dist/preact.module.js" } },
  { path: "/ui/vendor/hooks.module.js", source: { pkg: "preact", file: "hooks/dist/hooks.module.js" } },
  { path: "/ui/vendor/htm.module.js", source: { pkg: "htm", file: "dist/htm.module.js" } },
  { path: "/ui/vendor/uPlot.esm.js", source: { pkg: "uplot", file: "dist/uPlot.esm.js" } },
  { path: "/ui/vendor/uPlot.min.css", source: { pkg: "uplot", file: "dist/uPlot.min.css" } },
];

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/** Options of {@link consoleRoutes}, for tests. */
export interface ConsoleRoutesOptions {
  /** The folder holding the console's own files. Default: `console/` at the package's root. */
  readonly consoleDir?: string;
}

/**
 * The web console's static files at `/ui/` (issue #28), for the HTTP surface
 * beside the JSON API: `/ui` redirects to `/ui/` (index.html), and each file
 * of a fixed allow-list is read once, on first use, and kept. They need no
 * credentials: they hold no data; the page asks for the registration key and
 * keeps it in memory. index.html gets a content security policy that allows
 * the page's own scripts and its inline import map only, so a script
 * injected into the page could neither run nor send the key elsewhere.
 *
 * @example
 * new RegistryHttpServer({ routes: [...opsRoutes(metrics, serving), ...jsonApiRoutes(api), ...consoleRoutes()], logger });
 */
export function consoleRoutes(options: ConsoleRoutesOptions = {}): Route[] {
  const consoleDir = options.consoleDir ?? findConsoleDir();
  const cache = new Map<string, Promise<RouteResponse>>();
  const locate = (source: Source): string =>
    "console" in source ? join(consoleDir, source.console) : join(packageDir(source.pkg), source.file);
  const load = (file: ConsoleFile): Promise<RouteResponse> => {
    let answer = cache.get(file.path);
    if (!answer) {
      answer = readFile(locate(file.source)).then((body) => fileAnswer(file.path, body));
      // A failed read (a file missing from an install) is tried again on the next request.
      answer.catch(() => cache.delete(file.path));
      cache.set(file.path, answer);
    }
    return answer;
  };
  const routes: Route[] = FILES.map((file) => ({
    method: "GET",
    template: file.path,
    async handle({ req }) {
      let answer: RouteResponse;
      try {
        answer = await load(file);
      } catch {
        throw new HttpError(404, "NOT_FOUND", `console file ${file.path} is missing from this installation`);
      }
      if (req.headers["if-none-match"] === answer.headers?.etag) return { status: 304, headers: answer.headers ?? {}, body: Buffer.alloc(0) };
      return answer;
    },
  }));
  routes.push({
    method: "GET",
    template: "/ui",
    handle: () => ({ status: 308, headers: { location: "/ui/" }, text: "the console is at /ui/\n" }),
  });
  return routes;
}

/** A file's answer: its bytes and content type, a validator, and (for the page) its security headers. */
function fileAnswer(path: string, body: Buffer): RouteResponse {
  const extension = path.endsWith("/") ? ".html" : path.slice(path.lastIndexOf("."));
  const headers: Record<string, string> = {
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
    // Revalidated on every load (the etag makes that a 304): an upgraded registry serves its new console at once.
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
  };
  if (extension === ".html") {
    headers["content-security-policy"] = pagePolicy(body.toString("utf8"));
    headers["referrer-policy"] = "no-referrer";
    headers["x-frame-options"] = "DENY";
  }
  return { status: 200, body, contentType: CONTENT_TYPES[extension] ?? "application/octet-stream", headers };
}

/**
 * The page's content security policy: scripts from the registry only, plus
 * the page's inline scripts by hash (the import map, which cannot be an
 * external file); requests to the registry only; no framing.
 */
function pagePolicy(html: string): string {
  const inline = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)]
    .map((m) => m[1] as string)
    .filter((text) => text.trim() !== "")
    .map((text) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`);
  return [
    "default-src 'none'",
    `script-src 'self' ${inline.join(" ")}`.trim(),
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/**
 * The folder of an installed package, found as Node finds it (hoisted or
 * not): from its entry point up to its package.json (`htm` exports no
 * `./package.json` to resolve directly).
 */
function packageDir(pkg: string): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve(pkg));
  while (dirname(dir) !== dir) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === pkg) return dir;
    dir = dirname(dir);
  }
  throw new Error(`package ${pkg} not found`);
}

/**
 * The `console/` folder at the package's root, found from this module's
 * place: `src/http/` when run from source, `dist/src/http/` when built.
 */
function findConsoleDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, "console", "index.html"))) return join(dir, "console");
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "console");
}
