import { describe, expect, it } from "vitest";
import type { WriteRecord } from "./client-traffic.js";
import { checkWrites, type EtcdChange } from "./history-checks.js";

const created = (revision: number, op: string): EtcdChange => ({ revision, kind: "create", id: op, op, area: "instances" });
const FENCED_FROM_MS = 4000;
const fencedFrom4s = (r: WriteRecord): boolean => r.deadlineMs >= FENCED_FROM_MS;
const acked = (op: string, revision: number, startedAt: number, at: number): WriteRecord =>
  ({ op, kind: "register", id: op, revision, startedAt, at, deadlineMs: FENCED_FROM_MS, ok: true });
const failed = (op: string, startedAt: number, at: number, deadlineMs = FENCED_FROM_MS): WriteRecord =>
  ({ op, kind: "register", code: "DEADLINE_EXCEEDED", startedAt, at, deadlineMs, ok: false });

/** The chaos run's write check: what it may call a commit after the client was told of failure. */
describe("checkWrites", () => {
  it("flags a failed Register that etcd committed after a write sent after the failure", () => {
    const check = checkWrites(
      [failed("late", 0, 2000), acked("next", 11, 2500, 2510)],
      [created(11, "next"), created(12, "late")],
      fencedFrom4s,
    );
    expect(check.committedDespiteFailure).toBe(1);
    expect(check.committedAfterFailure).toEqual([{ op: "late", laterByMs: 500 }]);
    expect(check.committedAfterFailureUnfenced).toEqual([]);
  });

  it("lists apart one the fence cannot hold", () => {
    const check = checkWrites(
      [failed("near", 0, 2000, 2000), acked("next", 11, 2500, 2510)],
      [created(11, "next"), created(12, "near")],
      fencedFrom4s,
    );
    expect(check.committedAfterFailure).toEqual([]);
    expect(check.committedAfterFailureUnfenced).toEqual([{ op: "near", laterByMs: 500 }]);
  });

  it("does not flag one committed before the failure whose neighbour's answer came late (a frozen replica held it)", () => {
    const check = checkWrites(
      // "held" committed at 11 early on, its answer came after the thaw; "early" committed at 12, its caller gave up at 2000.
      [acked("held", 11, 0, 3000), failed("early", 100, 2000)],
      [created(11, "held"), created(12, "early")],
      fencedFrom4s,
    );
    expect(check.committedDespiteFailure).toBe(1);
    expect(check.committedAfterFailure).toEqual([]);
  });
});
