import { once } from "node:events";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { HttpProber, type HttpProberOptions, type ProbeTarget } from "../../src/health/http-probe.js";
import { startBlackhole } from "../support/blackhole.js";
import { closedPort, nextEvent, startHttp } from "./helpers.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function prober(options: Partial<HttpProberOptions> = {}): HttpProber {
  const p = new HttpProber({ timeoutMs: 2000, ...options });
  cleanups.push(() => p.close());
  return p;
}

async function server(...args: Parameters<typeof startHttp>) {
  const fixture = await startHttp(...args);
  cleanups.push(() => fixture.close());
  return fixture;
}

const target = (port: number, path = "/health", host = "127.0.0.1"): ProbeTarget => ({ id: "t", host, port, path });

describe("HttpProber", () => {
  it("passes on 2xx and hands over a JSON body", async () => {
    const s = await server((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ status: "up", load: 0.5 }));
    });
    expect(await prober().probe(target(s.port))).toEqual({ ok: true, status: 200, data: { status: "up", load: 0.5 } });
  });

  it("parses a JSON body without a JSON content type, and leaves other bodies undefined", async () => {
    const s = await server((req, res) => {
      res.statusCode = req.url === "/text" ? 204 : 200;
      res.end(req.url === "/json" ? "[1,2]" : req.url === "/plain" ? "OK" : undefined);
    });
    const p = prober();
    expect(await p.probe(target(s.port, "/json"))).toEqual({ ok: true, status: 200, data: [1, 2] });
    expect(await p.probe(target(s.port, "/plain"))).toEqual({ ok: true, status: 200, data: undefined });
    expect(await p.probe(target(s.port, "/text"))).toEqual({ ok: true, status: 204, data: undefined });
  });

  it("fails on non-2xx with the status as reason", async () => {
    const s = await server((req, res) => {
      res.statusCode = req.url === "/missing" ? 404 : 503;
      res.end('{"status":"down"}');
    });
    const p = prober();
    expect(await p.probe(target(s.port))).toEqual({ ok: false, reason: "HTTP 503" });
    expect(await p.probe(target(s.port, "/missing"))).toEqual({ ok: false, reason: "HTTP 404" });
  });

  it("times out a server that never answers", async () => {
    const s = await server(() => undefined);
    const started = performance.now();
    expect(await prober({ timeoutMs: 200 }).probe(target(s.port))).toEqual({ ok: false, reason: "timed out after 200 ms" });
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("times out a body that stalls after the headers", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"status":');
    });
    expect(await prober({ timeoutMs: 200 }).probe(target(s.port))).toEqual({ ok: false, reason: "timed out after 200 ms" });
  });

  it("reports an error status whose body stalls by its status, not as a timeout", async () => {
    const s = await server((_req, res) => {
      res.writeHead(503, { "content-length": "100" });
      res.write("x");
    });
    expect(await prober({ timeoutMs: 200 }).probe(target(s.port))).toEqual({ ok: false, reason: "HTTP 503" });
  });

  it("fails with the connect error when nothing listens", async () => {
    const result = await prober().probe(target(await closedPort()));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/ECONNREFUSED/);
  });

  it("stops reading a body over the cap: still a pass, no data, connection dropped", async () => {
    let written = 0;
    let closed: Promise<unknown> = Promise.resolve();
    const s = await server((_req, res) => {
      closed = once(res, "close");
      res.writeHead(200, { "content-type": "application/json" });
      // An endless body: the probe can only finish if it stops reading.
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length;
      };
      res.on("drain", pump);
      pump();
    });
    const result = await prober({ maxBodyBytes: 1024 }).probe(target(s.port));
    expect(result).toEqual({ ok: true, status: 200, data: undefined });
    await closed;
    expect(written).toBeLessThan(16 * 1024 * 1024);
  });

  it("does not read a body whose declared length is over the cap", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": 10_000_000 });
      res.write("[");
    });
    expect(await prober({ maxBodyBytes: 1024 }).probe(target(s.port))).toEqual({ ok: true, status: 200, data: undefined });
  });

  it("follows redirects that stay on the same host:port", async () => {
    const s = await server((req, res) => {
      if (req.url === "/health") res.writeHead(302, { location: "/moved?x=1" }).end("see /moved");
      else if (req.url === "/moved?x=1") res.writeHead(307, { location: `http://127.0.0.1:${s.port}/final` }).end();
      else res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
    expect(await prober().probe(target(s.port))).toEqual({ ok: true, status: 200, data: { ok: true } });
    expect(s.requests.map((r) => r.url)).toEqual(["/health", "/moved?x=1", "/final"]);
  });

  it("refuses redirects to another host or port, and redirect loops", async () => {
    const other = await server((_req, res) => res.end("{}"));
    const s = await server((req, res) => {
      const location =
        req.url === "/port" ? `http://127.0.0.1:${other.port}/` : req.url === "/name" ? `http://localhost:${s.port}/` : "/loop";
      res.writeHead(301, { location }).end();
    });
    const p = prober();
    const refused = { ok: false, reason: "redirect to another host not followed" };
    expect(await p.probe(target(s.port, "/port"))).toEqual(refused);
    expect(await p.probe(target(s.port, "/name"))).toEqual(refused);
    expect(other.requests).toHaveLength(0);
    expect(await p.probe(target(s.port, "/loop"))).toEqual({ ok: false, reason: "too many redirects (more than 3)" });
    expect(s.requests.filter((r) => r.url === "/loop")).toHaveLength(4);
  });

  it("sends the user-agent", async () => {
    const s = await server((_req, res) => res.end());
    await prober().probe(target(s.port));
    await prober({ userAgent: "custom-agent/2" }).probe(target(s.port));
    expect(s.requests.map((r) => r.headers["user-agent"])).toEqual(["service-registry-health/1", "custom-agent/2"]);
  });

  it("reuses one keep-alive connection across probes", async () => {
    const s = await server((_req, res) => res.end('{"n":1}'));
    const p = prober();
    for (let i = 0; i < 5; i++) {
      expect((await p.probe(target(s.port))).ok).toBe(true);
      // undici hands a kept-alive socket out again one loop turn after a
      // response ends (a guard against servers that close anyway); real
      // probes of a target are an interval apart.
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(s.requests).toHaveLength(5);
    expect(s.connections).toBe(1);
  });

  it("retries once on a fresh connection when the server resets a reused keep-alive socket", async () => {
    const served = new WeakSet<net.Socket>();
    const s = await server((req, res) => {
      // The second request on a connection finds it reset, as when the server's
      // idle timeout closes a socket just as the prober reuses it.
      if (served.has(req.socket)) {
        req.socket.resetAndDestroy();
        return;
      }
      served.add(req.socket);
      res.end('{"ok":true}');
    });
    const p = prober();
    expect(await p.probe(target(s.port))).toEqual({ ok: true, status: 200, data: { ok: true } });
    await new Promise((resolve) => setImmediate(resolve)); // let undici hand the socket out again
    expect(await p.probe(target(s.port))).toEqual({ ok: true, status: 200, data: { ok: true } });
    expect(s.requests).toHaveLength(3);
    expect(s.connections).toBe(2);
  });

  it("reports a reset that repeats on the retry as a connection failure", async () => {
    const s = await server((req) => req.socket.resetAndDestroy());
    const result = await prober().probe(target(s.port));
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/ECONNRESET|other side closed/) });
    expect(s.requests).toHaveLength(2);
  });

  it("times out a blackholed host at the deadline and closes the socket", async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const connected = nextEvent(hole.server, "connection", 5000);
    const pending = prober({ timeoutMs: 200 }).probe(target(hole.port));
    const [socket] = (await connected) as [net.Socket];
    // Read (and discard) the request so the prober's FIN is seen behind it.
    socket.resume();
    const closed = nextEvent(socket, "close", 5000);
    const started = performance.now();
    expect(await pending).toEqual({ ok: false, reason: "timed out after 200 ms" });
    expect(performance.now() - started).toBeLessThan(1000);
    await closed;
  });

  it("gives up on a probe still waiting for a connection without waiting for undici", async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const p = prober({ timeoutMs: 10_000, maxSockets: 1 });
    const holding = new AbortController();
    const first = p.probe(target(hole.port), holding.signal);
    await nextEvent(hole.server, "connection", 5000);
    // The only connection is taken, so this probe waits in undici's queue.
    const queued = new AbortController();
    const second = p.probe(target(hole.port), queued.signal);
    queued.abort();
    expect(await second).toEqual({ ok: false, reason: "aborted" });
    expect(hole.accepted).toBe(1);
    holding.abort();
    expect(await first).toEqual({ ok: false, reason: "aborted" });
  });

  it("aborts every probe sharing a signal, and a finished probe ignores a later abort", async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const s = await server((_req, res) => res.end("{}"));
    const p = prober();
    const controller = new AbortController();
    expect(await p.probe(target(s.port), controller.signal)).toEqual({ ok: true, status: 200, data: {} });
    const pending = [p.probe(target(hole.port), controller.signal), p.probe(target(hole.port), controller.signal)];
    await nextEvent(hole.server, "connection", 5000);
    controller.abort();
    expect(await Promise.all(pending)).toEqual([
      { ok: false, reason: "aborted" },
      { ok: false, reason: "aborted" },
    ]);
  });

  it("reports the status of a failure whose body is over the cap", async () => {
    const s = await server((_req, res) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(Buffer.alloc(200_000, 0x78));
    });
    expect(await prober().probe(target(s.port))).toEqual({ ok: false, reason: "HTTP 500" });
  });

  it("fails with 'aborted' when the signal aborts, and drops the connection", async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const controller = new AbortController();
    const pending = prober().probe(target(hole.port), controller.signal);
    const [socket] = (await nextEvent(hole.server, "connection", 5000)) as [net.Socket];
    const socketClosed = nextEvent(socket, "close", 5000);
    controller.abort();
    expect(await pending).toEqual({ ok: false, reason: "aborted" });
    await socketClosed;
  });

  it("never rejects: bad paths, already-aborted signals and a closed prober become failures", async () => {
    const s = await server((_req, res) => res.end());
    const p = prober();
    const bad = await p.probe(target(s.port, "/with space"));
    expect(bad.ok).toBe(false);
    expect(await p.probe(target(s.port), AbortSignal.abort())).toEqual({ ok: false, reason: "aborted" });
    expect(await p.probe(target(s.port, "/health", "fe80::1%lo"))).toEqual({
      ok: false,
      reason: "IPv6 zone ids (fe80::1%eth0) are not supported by the probe client",
    });
    p.close();
    expect(await p.probe(target(s.port))).toEqual({ ok: false, reason: "prober closed" });
  });

  it("probes IPv6 literals, bracketed or not", async (ctx) => {
    let s;
    try {
      s = await server((_req, res) => res.end('{"v":6}'), "::1");
    } catch {
      ctx.skip("no IPv6 loopback here");
      return;
    }
    const p = prober();
    expect(await p.probe(target(s.port, "/health", "::1"))).toEqual({ ok: true, status: 200, data: { v: 6 } });
    expect(await p.probe(target(s.port, "/health", "[::1]"))).toEqual({ ok: true, status: 200, data: { v: 6 } });
    expect(s.requests[0]?.headers.host).toBe(`[::1]:${s.port}`);
  });
});
