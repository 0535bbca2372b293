import http from "node:http";
import { sleep } from "../lib/stats.js";

/** What the bare GET loop did in its measured window; CPU is this process's own. */
export interface GetLoopResult {
  readonly gets: number;
  readonly errors: number;
  readonly getsPerSec: number;
  readonly cpuPerGetUs: number;
}

function get(agent: http.Agent, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ agent, host: "127.0.0.1", port, path: "/health" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/**
 * The probing ceiling: `concurrency` callers each GETting /health in a loop,
 * round-robin over `ports`, on one keep-alive agent, reading each body. No
 * scheduling, timeouts, events or bookkeeping: what an HTTP probe costs in
 * Node at the least.
 */
export async function httpGetLoop(o: { ports: number[]; concurrency: number; warmupMs: number; durationMs: number }): Promise<GetLoopResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  let phase: "warmup" | "measure" | "done" = "warmup";
  let gets = 0;
  let errors = 0;
  let next = 0;
  const caller = async (): Promise<void> => {
    while (phase !== "done") {
      const port = o.ports[next++ % o.ports.length] as number;
      try {
        await get(agent, port);
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
  agent.destroy();
  return { gets, errors, getsPerSec: gets / seconds, cpuPerGetUs: (cpu.user + cpu.system) / gets };
}
