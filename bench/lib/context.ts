import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RegistryServerConfig } from "../servers/registry-server.js";
import type { EtcdHandle } from "./etcd.js";
import { BenchChild } from "./ipc.js";
import type { Figure } from "./report.js";

/** Counts and durations of one mode: `--quick` (CI, under a minute) or full (under six minutes). */
export interface BenchParams {
  /**
   * `jitWarmupMs`: an unmeasured burst at c=16 against every server before the first window;
   * `concurrencies`: each concurrency measured, with its windows' measured length;
   * `rounds`: windows per server and concurrency, interleaved with the other servers' and pooled.
   */
  readonly register: {
    concurrencies: readonly { concurrency: number; durationMs: number }[];
    jitWarmupMs: number;
    rounds: number;
    warmupMs: number;
  };
  /** `rounds`: windows per server, interleaved with the other servers' and pooled. */
  readonly getByType: { types: number; perType: number; concurrency: number; rounds: number; warmupMs: number; durationMs: number };
  readonly fanout: { streams: number; processes: number[]; rounds: number };
  readonly probing: {
    instances: number;
    intervalMs: number;
    ttlMs: number;
    maxRequests: number;
    measureMs: number;
    /** Capacity run: every healthy instance probed as fast as `capacityConcurrency` allows. */
    capacityIntervalMs: number;
    capacityConcurrency: number;
    capacityMs: number;
    /** The probe queue alone: tasks queued at once (run `capacityConcurrency` at a time), and measured rounds per queue. */
    queueTasks: number;
    queueRounds: number;
  };
  readonly memory: { types: number; perType: number };
  /** Scenario 6: see bench/scenarios/failure-detection.ts. */
  readonly detection: {
    /** Registry settings: probe interval and timeout (HEALTH_CHECK_INTERVAL_MS, HEALTH_CHECK_TTL_MS). */
    intervalMs: number;
    timeoutMs: number;
    /** ttl_ms of the ttl instances, and how often they heartbeat. */
    ttlMs: number;
    heartbeatMs: number;
    /** HTTP instances of another type the registry probes throughout (a fleet, for the mass-failure guard). */
    bystanders: number;
    /** Backends of each kind that stay up through the run. */
    standing: number;
    /** Rounds of kills, fresh backends of each kind killed per round, and ttl/session ones killed at once. */
    rounds: number;
    victims: number;
    parallel: number;
    /** SIGSTOPped backends of each kind, and whether sessions are among them (their bound is 15 s). */
    stopVictims: number;
    stopSessions: boolean;
    /** KeepAlive streams held for the memory figure, and the connections they share. */
    sessions: number;
    sessionConnections: number;
  };
  /** Scenario 7: see bench/scenarios/xds.ts. */
  readonly xds: {
    /** Register→first call: rounds, backends registered throughout, and how often each router calls. */
    rounds: number;
    standing: number;
    callEveryMs: number;
    /** At scale: ADS streams, their processes, streams per connection, types (instances seeded in each), and Registers timed. */
    streams: number;
    processes: number;
    perConnection: number;
    types: number;
    perType: number;
    registers: number;
  };
}

export const FULL: BenchParams = {
  // Windows under load are 2 s: a registry's mark-compact comes every few seconds at c=16 and
  // c=64 and costs what it holds, so three 1 s windows held one or none of them, and the
  // pooled figure said which; 2 s halves that swing without removing it ("How far to trust
  // one run" in docs/performance.md). The targets are judged at c=16 and c=64.
  register: {
    concurrencies: [{ concurrency: 1, durationMs: 1000 }, { concurrency: 16, durationMs: 2000 }, { concurrency: 64, durationMs: 2000 }],
    jitWarmupMs: 1500,
    rounds: 3,
    warmupMs: 500,
  },
  getByType: { types: 1000, perType: 100, concurrency: 16, rounds: 3, warmupMs: 500, durationMs: 1500 },
  fanout: { streams: 1000, processes: [1, 4], rounds: 250 },
  probing: { instances: 10_000, intervalMs: 5000, ttlMs: 2000, maxRequests: 1500, measureMs: 10_000,
    capacityIntervalMs: 200, capacityConcurrency: 64, capacityMs: 4000, queueTasks: 20_000, queueRounds: 7 },
  memory: { types: 1000, perType: 100 },
  detection: { intervalMs: 1000, timeoutMs: 500, ttlMs: 1000, heartbeatMs: 333, bystanders: 100, standing: 10, rounds: 5, victims: 10, parallel: 5,
    stopVictims: 5, stopSessions: true, sessions: 10_000, sessionConnections: 12 },
  // One Register into each type: every stream is timed once.
  xds: { rounds: 50, standing: 1, callEveryMs: 2, streams: 10_000, processes: 4, perConnection: 500, types: 100, perType: 3, registers: 100 },
};

export const QUICK: BenchParams = {
  register: {
    concurrencies: [{ concurrency: 1, durationMs: 200 }, { concurrency: 16, durationMs: 200 }, { concurrency: 64, durationMs: 200 }],
    jitWarmupMs: 150,
    rounds: 1,
    warmupMs: 100,
  },
  getByType: { types: 50, perType: 100, concurrency: 16, rounds: 1, warmupMs: 200, durationMs: 500 },
  fanout: { streams: 200, processes: [1, 4], rounds: 10 },
  probing: { instances: 1000, intervalMs: 1000, ttlMs: 500, maxRequests: 150, measureMs: 1000,
    capacityIntervalMs: 20, capacityConcurrency: 64, capacityMs: 500, queueTasks: 20_000, queueRounds: 3 },
  memory: { types: 50, perType: 100 },
  detection: { intervalMs: 1000, timeoutMs: 500, ttlMs: 1000, heartbeatMs: 333, bystanders: 20, standing: 3, rounds: 1, victims: 2, parallel: 1,
    stopVictims: 1, stopSessions: false, sessions: 200, sessionConnections: 1 },
  xds: { rounds: 5, standing: 1, callEveryMs: 2, streams: 500, processes: 2, perConnection: 250, types: 10, perType: 3, registers: 10 },
};

/**
 * `node --cpu-prof` into a folder of the process's own when profiling: tsx's
 * loader thread writes a profile too, and default names carry only the thread id.
 */
export function profileFlags(profileDir: string | undefined, name: string): string[] {
  return profileDir ? ["--cpu-prof", `--cpu-prof-dir=${join(profileDir, name)}`] : [];
}

/** Starts a ceiling process (`servers/ceiling-server.ts` with `args`; profiled when `profileDir` is set). */
export function startCeiling(name: string, args: string[], profileDir: string | undefined): BenchChild<{ port: number }> {
  return BenchChild.start<{ port: number }>(name, "servers/ceiling-server.ts", args, { nodeFlags: profileFlags(profileDir, name) });
}

/** A registry bench process and its address. */
export interface RegistryProcess {
  readonly child: BenchChild<{ port: number; startMs: number; uptimeMs: number; instances: number }>;
  readonly address: string;
}

/** What every scenario gets from the orchestrator. */
export class BenchContext {
  readonly figures: Figure[] = [];
  readonly details: Record<string, unknown> = {};

  constructor(
    readonly params: BenchParams,
    readonly quick: boolean,
    /** Run registry processes under `node --cpu-prof` (figures then carry the profiler's overhead). */
    readonly profileDir: string | undefined,
    /** A temp folder removed after the run (data dirs, etcd logs). */
    readonly tmp: string,
    readonly load: BenchChild,
    readonly ceiling: BenchChild<{ port: number }>,
    readonly ceilingAddress: string,
    readonly etcd: EtcdHandle,
    /** The compiled tree every registry process runs (`npm run build`'s dist/, as deployed). */
    readonly build: string,
  ) {}

  log(message: string): void {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
  }

  /** A fresh directory under the run's temp folder. */
  dir(name: string): string {
    const path = join(this.tmp, name);
    mkdirSync(path, { recursive: true });
    return path;
  }

  /** Starts a bench registry process, compiled as deployed (profiled under `--profile`), and waits until it serves. */
  async startRegistry(name: string, config: RegistryServerConfig, nodeFlags: string[] = []): Promise<RegistryProcess> {
    const flags = [...nodeFlags, ...profileFlags(this.profileDir, name)];
    const child = BenchChild.start<{ port: number; startMs: number; uptimeMs: number; instances: number }>(
      name,
      "servers/registry-server.ts",
      // A data directory under the run's temp folder, removed with it, unless the scenario names one.
      [JSON.stringify({ ...config, dataDir: config.dataDir ?? this.dir(name), build: this.build })],
      { nodeFlags: flags, readyTimeoutMs: 120_000 },
    );
    const ready = await child.ready;
    return { child, address: `127.0.0.1:${ready.port}` };
  }

  /** Starts a ceiling process (`servers/ceiling-server.ts` with `args`; profiled under `--profile`). */
  startCeiling(name: string, args: string[] = []): BenchChild<{ port: number }> {
    return startCeiling(name, args, this.profileDir);
  }

  add(...figures: Figure[]): void {
    this.figures.push(...figures);
  }
}
