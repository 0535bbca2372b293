import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { freePort, retryOnPortTaken } from "./etcd-process.js";
import { waitFor } from "./wait-for.js";

/** One member of an `EtcdCluster`. */
export interface EtcdMember {
  readonly name: string;
  readonly endpoint: string;
  readonly pid: number | undefined;
  /** SIGKILL: gone at once, its data kept. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data; resolves once it answers /health. */
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: frozen with its sockets open. */
  freeze(): void;
  thaw(): void;
}

/** A real multi-member etcd cluster on loopback, each member in its own temp data dir. */
export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  readonly endpoints: readonly string[];
  /** The member that is raft leader now, asked of the members themselves. */
  leader(): Promise<EtcdMember>;
  close(): Promise<void>;
}

/** Starts `size` etcd members that form one cluster; resolves once it has a leader. */
export function startEtcdCluster(size: number): Promise<EtcdCluster> {
  return retryOnPortTaken(() => launchEtcdCluster(size));
}

async function launchEtcdCluster(size: number): Promise<EtcdCluster> {
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), peer: await freePort() })));
  const names = ports.map((_, i) => `m${i}`);
  const initialCluster = ports.map((p, i) => `${names[i]}=http://127.0.0.1:${p.peer}`).join(",");
  const token = `fault-run-${process.pid}-${Date.now()}`;

  const members = ports.map((p, i): EtcdMember & { dataDir: string } => {
    const name = names[i]!;
    const endpoint = `http://127.0.0.1:${p.client}`;
    const peer = `http://127.0.0.1:${p.peer}`;
    const dataDir = mkdtempSync(join(tmpdir(), `etcd-${name}-`));
    let child: ChildProcess | undefined;
    let output = "";
    const alive = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
    return {
      name,
      endpoint,
      dataDir,
      get pid() {
        return child?.pid;
      },
      async start() {
        if (alive()) return;
        output = "";
        child = spawn(
          "etcd",
          [
            "--name", name,
            "--data-dir", dataDir,
            "--listen-client-urls", endpoint,
            "--advertise-client-urls", endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initialCluster,
            "--initial-cluster-token", token,
            "--initial-cluster-state", "new",
            "--log-level", "error",
          ],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
        child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
        await waitHealthy(endpoint, () => (child?.exitCode === null ? undefined : `etcd ${name} exited:\n${output}`));
      },
      async kill() {
        const c = child;
        if (!c || !alive()) return;
        const exited = new Promise((resolve) => c.once("exit", resolve));
        c.kill("SIGKILL");
        await exited;
      },
      freeze() {
        if (alive()) child!.kill("SIGSTOP");
      },
      thaw() {
        if (alive()) child!.kill("SIGCONT");
      },
    };
  });

  const removeAll = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.kill()));
    for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
  };
  // Members wait for each other to form the cluster: start them together.
  try {
    await Promise.all(members.map((m) => m.start()));
  } catch (err) {
    await removeAll();
    throw err;
  }
  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    async leader() {
      for (const m of members) {
        const client = new Etcd3({ hosts: m.endpoint, dialTimeout: 1000 });
        try {
          const status = await client.maintenance.status();
          if (status.leader === status.header.member_id) return m;
        } catch {
          // down or frozen: not the leader we can kill
        } finally {
          client.close();
        }
      }
      throw new Error("no etcd member says it is the leader");
    },
    close: removeAll,
  };
}

/** Waits until `endpoint/health` answers ok (the member sees a leader); `exited` names why to give up early. */
async function waitHealthy(endpoint: string, exited: () => string | undefined): Promise<void> {
  await waitFor(
    async () => {
      const gone = exited();
      if (gone) throw new Error(gone);
      return fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    },
    `etcd at ${endpoint} to become healthy`,
    20_000,
    100,
  );
}
