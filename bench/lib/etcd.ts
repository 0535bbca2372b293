import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, openSync } from "node:fs";
import { request } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { sleep } from "./stats.js";

/** The etcd binary: Debian's etcd-server 3.4 (`apt-get install etcd-server`). */
export const ETCD_BIN = process.env.ETCD_BIN ?? "/usr/bin/etcd";

/** A running single-member etcd on loopback, started by the bench. */
export interface EtcdHandle {
  readonly pid: number;
  /** `127.0.0.1:<port>` for the etcd3 client. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** Milliseconds from spawn until /health answered true. */
  readonly readyAfterMs: number;
  stop(): Promise<void>;
}

/** A port the kernel just handed out on 127.0.0.1 (closed again, so there is a small reuse race). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/health", timeout: 1000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(res.statusCode === 200 && body.includes('"true"')));
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

const running = new Set<ChildProcess>();
/** Kills every etcd this process started (on an orchestrator failure). */
export function killAllEtcd(): void {
  for (const child of running) child.kill("SIGKILL");
}

/**
 * Starts etcd on free loopback ports with `dataDir` (reused if it holds data,
 * as for a restart), revision-based auto-compaction keeping the last 10,000
 * revisions (the registry's default history window), and waits until it is
 * healthy. Durability is etcd's default (fsync on every commit).
 */
export async function startEtcd(dataDir: string, timeoutMs = 60_000): Promise<EtcdHandle> {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(`${ETCD_BIN} not found: install Debian's etcd-server (apt-get install etcd-server) or set ETCD_BIN`);
  }
  for (let attempt = 0; ; attempt++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const log = openSync(join(dataDir, "..", `etcd-${clientPort}.log`), "a");
    const startedAt = performance.now();
    const child = spawn(
      ETCD_BIN,
      [
        "--name=bench",
        `--data-dir=${dataDir}`,
        `--listen-client-urls=http://127.0.0.1:${clientPort}`,
        `--advertise-client-urls=http://127.0.0.1:${clientPort}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=bench=http://127.0.0.1:${peerPort}`,
        "--initial-cluster-state=new",
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=10000",
        "--logger=zap",
        "--log-level=warn",
      ],
      { stdio: ["ignore", log, log] },
    );
    running.add(child);
    let exited = false;
    const exit = new Promise<void>((resolve) => child.on("exit", () => ((exited = true), running.delete(child), resolve())));
    while (!exited && performance.now() - startedAt < timeoutMs) {
      if (await healthy(clientPort)) {
        const readyAfterMs = performance.now() - startedAt;
        return {
          pid: child.pid as number,
          endpoint: `127.0.0.1:${clientPort}`,
          dataDir,
          readyAfterMs,
          async stop() {
            if (exited) return;
            child.kill("SIGTERM");
            const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
            await exit;
            clearTimeout(timer);
          },
        };
      }
      await sleep(20);
    }
    child.kill("SIGKILL");
    await exit;
    // A port taken between freePort() and etcd's bind: try again with new ports.
    if (attempt >= 2) throw new Error(`etcd did not become healthy within ${timeoutMs} ms; see ${dataDir}/../etcd-*.log`);
  }
}
