import { describe, expect, it } from "vitest";
import { etcdPresent } from "../etcd/etcd-suite.js";
import { runFaults } from "./fault-run.js";

describe.skipIf(!etcdPresent)("replicas on a 3-member etcd through every fault in turn", () => {
  it("lose no acknowledged write, give no watcher a gap, duplicate or step back, and recover from each fault", async () => {
    const report = await runFaults({ faultMs: 3000, etcdOutageMs: 8000, watchers: 3, memberTtlS: 2, only: process.env.FAULTS?.split(","), log: (l) => console.log(l) });
    console.log(JSON.stringify(report, null, 2));
    expect(report.writes.lost).toEqual([]);
    expect(report.writes.committedAfterFailure).toEqual([]);
    for (const w of report.watchers) expect(w).toMatchObject({ missed: 0, duplicates: 0, backwards: 0, resets: 0 });
    expect(report.watchers.every((w) => w.changes > 0)).toBe(true);
    for (const p of report.phases) expect(p.recoveredMs, p.fault).toBeLessThan(15_000);
    // A frozen etcd member (quorum kept by the other two) slows writes; it must not stop them, as it
    // nearly did before replicas checked each member (docs/replicas.md). A frozen leader's election,
    // randomised by etcd, takes a good part of a short freeze, and CI's parallel load slows what is
    // left: the bound tells the two behaviours apart, not how long an election lasts.
    for (const p of report.phases.filter((p) => p.fault.startsWith("etcd") && p.fault.includes("frozen"))) {
      expect(p.acksPerSecond, p.fault).toBeGreaterThan(0.1 * report.baselineAcksPerSecond);
    }
    const blackhole = report.phases.find((p) => p.fault.includes("blackholed"))!;
    expect(blackhole.detectedMs).toBeLessThan(4000);
    expect(report.membershipPutsAfterOutage).toHaveLength(3);
    for (const puts of report.membershipPutsAfterOutage) expect(puts).toBeLessThanOrEqual(3);
    // Flat through the outage: what a few GC cycles move, not a retry storm's growth.
    for (const r of report.rssDuringOutage) expect(r.endMiB - r.beforeMiB, r.replica).toBeLessThan(40);
  }, 300_000);
});
