import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A real HTTP /health endpoint whose answer a test can change. */
export interface HealthServer {
  readonly port: number;
  /** Status code to answer with (default 200). */
  status: number;
  /** True: take requests and never answer them, as a blackholed path looks to a prober. */
  hanging: boolean;
  /** Requests seen so far. */
  readonly requests: IncomingMessage[];
  /** Resolves at the next request. */
  nextRequest(timeoutMs?: number): Promise<IncomingMessage>;
  /** Stops listening and cuts every connection, as a crashed backend does: probes get ECONNREFUSED. */
  stop(): Promise<void>;
  /** Listens again on the same port after `stop()`, as a restarted backend does. */
  resume(): Promise<void>;
  close(): Promise<void>;
}

export async function startHealthServer(body: unknown = { status: "ok" }): Promise<HealthServer> {
  const requests: IncomingMessage[] = [];
  const waiters: ((r: IncomingMessage) => void)[] = [];
  const state = { status: 200, hanging: false };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(req);
    if (state.hanging) return; // a path gone silent: the prober waits out its timeout
    res.writeHead(state.status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
    for (const w of waiters.splice(0)) w(req);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const stop = (): Promise<void> => {
    if (!server.listening) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return {
    port,
    get status() {
      return state.status;
    },
    set status(s: number) {
      state.status = s;
    },
    get hanging() {
      return state.hanging;
    },
    set hanging(h: boolean) {
      state.hanging = h;
    },
    requests,
    nextRequest(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no health request on port ${port} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((r) => {
          clearTimeout(t);
          resolve(r);
        });
      });
    },
    stop,
    resume() {
      return new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => {
          server.off("error", reject);
          resolve();
        });
      });
    },
    close: stop,
  };
}
