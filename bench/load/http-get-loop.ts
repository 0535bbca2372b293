import http from "node:http";
import { Agent, type Dispatcher } from "undici";
import { sleep } from "../lib/stats.js";

/** What the bare GET loop did in its measured window; CPU is this process's own. */
export interface GetLoopResult {
  readonly gets: number;
  readonly errors: number;
  readonly getsPerSec: number;
  readonly cpuPerGetUs: number;
}

/** Which HTTP client the loop runs on: node's own, or undici (the prober's). */
export type GetLoopClient = "node:http" | "undici";

/** Where a GET goes: one instance's address. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

type Get = (to: Address) => Promise<void>;

function nodeGet(agent: http.Agent): Get {
  return ({ host, port }) =>
    new Promise((resolve, reject) => {
      const req = http.get({ agent, host, port, path: "/health" }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        res.on("error", reject);
      });
      req.on("error", reject);
    });
}

/**
 * The least a GET costs on undici: `dispatch()` with a handler that collects
 * the body, as the prober does (request() would add a stream per GET).
 */
function undiciGet(agent: Agent): Get {
  return ({ host, port }) =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let status = 0;
      const handler: Dispatcher.DispatchHandler = {
        // undici takes a handler without onRequestStart for one of the old API.
        onRequestStart: () => undefined,
        onResponseStart: (_c, statusCode) => void (status = statusCode),
        onResponseData: (_c, chunk) => void chunks.push(chunk),
        onResponseEnd: () => (status === 200 ? resolve() : reject(new Error(`HTTP ${status}`))),
        onResponseError: (_c, err) => reject(err),
      };
      agent.dispatch({ origin: `http://${host}:${port}`, path: "/health", method: "GET" }, handler);
    });
}

/** One keep-alive agent of the chosen client, and how to close it. */
function bareClient(client: GetLoopClient): { get: Get; close: () => Promise<void> } {
  if (client === "undici") {
    const agent = new Agent();
    return { get: undiciGet(agent), close: () => agent.destroy() };
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  return { get: nodeGet(agent), close: async () => agent.destroy() };
}

/**
 * The probing ceiling: `concurrency` callers each GETting /health in a loop,
 * round-robin over `addresses`, on one keep-alive agent, reading each body. No
 * scheduling, timeouts, events or bookkeeping: what an HTTP probe costs in
 * Node at the least, on node:http (the ceiling) or on undici (the
 * client the prober uses).
 */
export async function httpGetLoop(o: {
  addresses: Address[];
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  client?: GetLoopClient;
}): Promise<GetLoopResult> {
  const { get, close } = bareClient(o.client ?? "node:http");
  let phase: "warmup" | "measure" | "done" = "warmup";
  let gets = 0;
  let errors = 0;
  let next = 0;
  const caller = async (): Promise<void> => {
    while (phase !== "done") {
      const to = o.addresses[next++ % o.addresses.length] as Address;
      try {
        await get(to);
        if (phase === "measure") gets++;
      } catch {
        errors++;
      }
    }
  };
  const callers = Array.from({ length: o.concurrency }, caller);
  await sleep(o.warmupMs);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  phase = "measure";
  await sleep(o.durationMs);
  phase = "done";
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(callers);
  await close();
  return { gets, errors, getsPerSec: gets / seconds, cpuPerGetUs: (cpu.user + cpu.system) / gets };
}
