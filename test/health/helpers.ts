import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";

/** A real HTTP server on an ephemeral port that counts what it saw. */
export interface HttpFixture {
  readonly port: number;
  readonly host: string;
  readonly server: http.Server;
  /** TCP connections accepted so far. */
  connections: number;
  /** Requests seen so far, in order. */
  readonly requests: { url: string; headers: http.IncomingHttpHeaders; at: number }[];
  close(): Promise<void>;
}

/** Starts an HTTP server on `host`:0; `close()` destroys every socket and waits for them. */
export async function startHttp(handler: http.RequestListener, host = "127.0.0.1"): Promise<HttpFixture> {
  const server = http.createServer((req, res) => {
    fixture.requests.push({ url: req.url ?? "", headers: req.headers, at: performance.now() });
    handler(req, res);
  });
  const sockets = trackSockets(server, () => fixture.connections++);
  await listen(server, host);
  const fixture: HttpFixture = {
    port: (server.address() as AddressInfo).port,
    host,
    server,
    connections: 0,
    requests: [],
    close: () => closeServer(server, sockets),
  };
  return fixture;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await listen(server, "127.0.0.1");
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves when `emitter` emits `event`, or rejects after `timeoutMs` naming it. */
export async function nextEvent(emitter: NodeJS.EventEmitter, event: string, timeoutMs: number): Promise<unknown[]> {
  return once(emitter, event, { signal: AbortSignal.timeout(timeoutMs) }).catch((err: unknown) => {
    throw new Error(`no '${event}' event within ${timeoutMs} ms`, { cause: err });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function trackSockets(server: net.Server, onConnection: () => void): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    onConnection();
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  return sockets;
}

async function listen(server: net.Server, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

async function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const gone = [...sockets].map((socket) => (socket.destroyed ? Promise.resolve() : once(socket, "close")));
  for (const socket of sockets) socket.destroy();
  await Promise.all([closed, ...gone]);
}
