import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = ((): number => {
  try {
    const value = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds (user + system, every thread) a process has used so far, from
 * /proc/<pid>/stat. Works the same for a Node child and for etcd, so every
 * "server CPU per operation" figure is measured one way. Resolution: 1/100 s.
 */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * CPU seconds of a process's main thread alone. For a Node server the rest
 * (process minus main thread) is mostly V8's helper threads: concurrent
 * marking, parallel scavenging and the optimising compiler.
 */
export function mainThreadCpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuSeconds(path: string): number {
  const stat = readFileSync(path, "utf8");
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size of a process in bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** A CPU reading of one process at one moment, for `cpuSince`. */
export interface CpuMark {
  readonly pid: number;
  readonly cpu: number;
  readonly mainThreadCpu: number;
  readonly at: number;
}

export function cpuMark(pid: number): CpuMark {
  return { pid, cpu: cpuSeconds(pid), mainThreadCpu: mainThreadCpuSeconds(pid), at: performance.now() };
}

/** CPU seconds used (all threads, and the main thread's share) and wall seconds passed since `mark`. */
export function cpuSince(mark: CpuMark): { cpuSeconds: number; mainThreadCpuSeconds: number; wallSeconds: number } {
  return {
    cpuSeconds: cpuSeconds(mark.pid) - mark.cpu,
    mainThreadCpuSeconds: mainThreadCpuSeconds(mark.pid) - mark.mainThreadCpu,
    wallSeconds: (performance.now() - mark.at) / 1000,
  };
}
