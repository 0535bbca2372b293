/**
 * `npm run faults`: the multi-fault run at an operator's bad-day length (each
 * fault held 10 s, etcd down 30 s), printed as the tables in docs/replicas.md.
 * Loopback only; it starts and stops its own etcd members and replicas.
 */
import { hasEtcd } from "../support/etcd-process.js";
import { runFaults, type FaultRunReport } from "./fault-run.js";

if (!hasEtcd()) {
  console.error("needs `etcd` on the PATH (Debian: etcd-server)");
  process.exit(2);
}
const seconds = (ms: number | undefined): string => (ms === undefined ? "–" : (ms / 1000).toFixed(1));
const report: FaultRunReport = await runFaults({
  faultMs: Number(process.env.FAULT_MS ?? 10_000),
  etcdOutageMs: Number(process.env.ETCD_OUTAGE_MS ?? 30_000),
  watchers: 3,
  memberTtlS: 5,
  log: (line) => console.error(line),
});

console.log(`writes acknowledged per second before the first fault: ${report.baselineAcksPerSecond.toFixed(1)}\n`);
console.log("| fault | held (s) | NOT_SERVING after (s) | SERVING again after (s) | writes/s while held | longest write gap (s) | failed writes | watch streams moved |");
console.log("|---|---|---|---|---|---|---|---|");
for (const p of report.phases) {
  const errors = Object.entries(p.writeErrors).map(([code, n]) => `${n} ${code}`).join(", ") || "0";
  console.log(`| ${p.fault} | ${seconds(p.heldMs)} | ${seconds(p.detectedMs)} | ${seconds(p.recoveredMs)} | ${p.acksPerSecond === undefined ? "–" : p.acksPerSecond.toFixed(1)} | ${seconds(p.longestWriteGapMs)} | ${errors} | ${p.watchDisconnects} |`);
}
const w = report.writes;
const late = (list: readonly { laterByMs: number }[]): string =>
  `${list.length}${list.length ? `, by up to ${Math.max(...list.map((c) => c.laterByMs))} ms` : ""}`;
console.log(`\nwrites: ${w.acknowledged} acknowledged, ${w.lost.length} of them missing from etcd's history; ${w.failed} failed, of which ${w.committedDespiteFailure} Registers were committed anyway (after the client was told they failed: ${late(w.committedAfterFailure)} fenced, ${late(w.committedAfterFailureUnfenced)} with a near deadline or across an etcd election)`);
for (const c of report.watchers) {
  console.log(`${c.name}: ${c.changes} changes, ${c.missed} missed, ${c.duplicates} duplicated, ${c.backwards} backwards, ${c.resets} RESETs, ${c.disconnects} streams moved`);
}
console.log(`membership puts per replica after the etcd outage: ${report.membershipPutsAfterOutage.join(", ")}`);
console.log(`RSS through the etcd outage (MiB): ${report.rssDuringOutage.map((r) => `${r.replica} ${r.beforeMiB.toFixed(0)} → ${r.endMiB.toFixed(0)}`).join(", ")}`);
const ok = w.lost.length === 0 && w.committedAfterFailure.length === 0 && report.watchers.every((c) => c.missed + c.duplicates + c.backwards + c.resets === 0);
process.exit(ok ? 0 : 1);
