import { shellWords } from "./grpcurl.js";

/**
 * Runs documented curl command lines with fetch, sending what curl would
 * send (`-d` as curl's default form content type, which the API ignores), so
 * the docs' HTTP examples are checked against a running server.
 */

/** The curl command lines of the ```sh blocks of a Markdown document, continuations joined. */
export function curlLines(markdown: string): string[] {
  const lines: string[] = [];
  for (const block of markdown.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
    const joined = (block[1] as string).replace(/\\\n\s*/g, "");
    for (const line of joined.split("\n")) if (/^\s*curl\s/.test(line)) lines.push(line.trim());
  }
  return lines;
}

/** Runs one curl line; `origin` (e.g. `http://127.0.0.1:PORT`) replaces the documented `localhost:4001`. */
export async function runCurl(line: string, vars: Record<string, string>, origin: string): Promise<{ status: number; body: unknown }> {
  const words = shellWords(line, vars);
  let method: string | undefined;
  let data: string | undefined;
  const headers: Record<string, string> = {};
  let url: string | undefined;
  for (let i = 1; i < words.length; i++) {
    const w = words[i] as string;
    if (w === "-s" || w === "--silent") continue;
    if (w === "-X") method = words[++i];
    else if (w === "-H") {
      const h = words[++i] ?? "";
      const colon = h.indexOf(":");
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    } else if (w === "-d" || w === "--data") data = words[++i];
    else if (w.startsWith("-")) throw new Error(`curl flag ${w} is not emulated: ${line}`);
    else if (url === undefined) url = w;
    else throw new Error(`two URLs in: ${line}`);
  }
  if (!url) throw new Error(`no URL in: ${line}`);
  const parsed = new URL(url.includes("://") ? url : `http://${url}`);
  if (parsed.host !== "localhost:4001") throw new Error(`documented URL is not on localhost:4001: ${line}`);
  if (data !== undefined && !("content-type" in headers)) headers["content-type"] = "application/x-www-form-urlencoded";
  const res = await fetch(`${origin}${parsed.pathname}${parsed.search}`, {
    method: method ?? (data !== undefined ? "POST" : "GET"),
    headers,
    ...(data !== undefined ? { body: data } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? undefined : (JSON.parse(text) as unknown) };
}
