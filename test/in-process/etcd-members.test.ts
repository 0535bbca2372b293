import { isBrokenCircuitError } from "cockatiel";
import type { Etcd3 } from "etcd3";
import { afterEach, describe, expect, it } from "vitest";
import { EtcdMembers, type EtcdMembersOptions } from "../../src/store/etcd/etcd-members.js";
import { waitFor } from "../support/wait-for.js";

/**
 * The member choice's rules, with each member's check answered by the test:
 * `answering.get(endpoint)` decides whether that member's next check
 * succeeds. The real thing (frozen members of a real cluster) is
 * test/etcd/member-freeze.test.ts.
 */
describe("EtcdMembers", () => {
  const endpoints = ["http://a", "http://b", "http://c"];
  const answering = new Map<string, boolean>();
  const checks = new Map<string, number>();
  const changes: string[] = [];
  const failures: string[] = [];
  let members: EtcdMembers | undefined;

  function stubClient(endpoint: string): Etcd3 {
    const exec = (): Promise<unknown> => {
      checks.set(endpoint, (checks.get(endpoint) ?? 0) + 1);
      return answering.get(endpoint) === false ? Promise.reject(new Error("deadline exceeded")) : Promise.resolve({});
    };
    return { get: () => ({ options: () => ({ exec }) }), close: () => {} } as unknown as Etcd3;
  }

  function start(list = endpoints, overrides: Partial<EtcdMembersOptions> = {}): EtcdMembers {
    members = new EtcdMembers({
      endpoints: list,
      clientOf: stubClient,
      checkKey: "/service-registry/sync",
      intervalMs: 5,
      deadlineMs: 50,
      onChange: (endpoint, ok) => changes.push(`${endpoint} ${ok ? "answers" : "silent"}`),
      onTakenOut: (endpoint) => changes.push(`${endpoint} out`),
      onCheckAnswered: () => {},
      onCheckFailed: (reason) => failures.push(reason),
      ...overrides,
    });
    return members;
  }

  /** Whether etcd3 would send a call to `endpoint` (its policy lets it through). */
  async function takesCalls(endpoint: string): Promise<boolean> {
    try {
      await members!.policyFor(endpoint).execute(() => undefined);
      return true;
    } catch (err) {
      if (isBrokenCircuitError(err)) return false;
      throw err;
    }
  }

  /** Resolves once every member has been checked at least `n` more times. */
  async function rounds(n: number): Promise<void> {
    const from = new Map(endpoints.map((e) => [e, checks.get(e) ?? 0]));
    await waitFor(() => endpoints.every((e) => (checks.get(e) ?? 0) >= from.get(e)! + n), `${n} more checks of every member`, 2000, 1);
  }

  afterEach(async () => {
    await members?.close();
    members = undefined;
    answering.clear();
    checks.clear();
    changes.length = 0;
    failures.length = 0;
  });

  it("takes a silent member out of the choice while others answer, and back once it answers", async () => {
    await start().start();
    answering.set("http://b", false);
    await rounds(2);
    expect(await takesCalls("http://b")).toBe(false);
    expect(await takesCalls("http://a")).toBe(true);
    expect(members!.isAnswering("http://b")).toBe(false);
    for (let i = 0; i < 20; i++) expect(members!.pickAnswering()).not.toBe("http://b");
    expect(members!.pickAnswering("http://a")).toBe("http://c");

    answering.set("http://b", true);
    await rounds(2);
    expect(await takesCalls("http://b")).toBe(true);
    expect(changes).toEqual(["http://b silent", "http://b out", "http://b answers"]);
    expect(new Set(failures)).toEqual(new Set(["http://b: deadline exceeded"]));
  });

  it("keeps the member that answered last when none answers, so calls wait instead of failing at once", async () => {
    await start().start();
    answering.set("http://a", false);
    await rounds(2);
    answering.set("http://b", false);
    await rounds(2);
    answering.set("http://c", false);
    await rounds(2);
    expect([await takesCalls("http://a"), await takesCalls("http://b"), await takesCalls("http://c")]).toEqual([false, false, true]);
    expect(members!.pickAnswering()).toBeUndefined();

    // The first back takes the calls; the one kept in goes out once another answered after it.
    answering.set("http://a", true);
    await rounds(2);
    expect([await takesCalls("http://a"), await takesCalls("http://b"), await takesCalls("http://c")]).toEqual([true, false, false]);
    expect(changes.filter((c) => c.endsWith("out"))).toEqual(["http://a out", "http://b out", "http://c out"]);
  });

  it("checks a lone endpoint too (the store's liveness), and never takes it out: there is nothing to choose", async () => {
    const answered: number[] = [];
    await start(["http://a"], { onCheckAnswered: () => answered.push(Date.now()) }).start();
    expect(answered.length).toBe(1); // the first round settles before start() does
    answering.set("http://a", false);
    await waitFor(() => failures.length >= 2, "two failed checks of the lone member", 2000, 1);
    expect(await takesCalls("http://a")).toBe(true);
    expect(changes).toEqual(["http://a silent"]);
    expect(members!.pickAnswering()).toBeUndefined();
  });

  it("checks a member again soon after a failed check, and answering ones at the interval", async () => {
    // After an election etcd fails the reads that waited for it: the next one answers at once,
    // and waiting out a whole interval would spend the liveness window for nothing.
    answering.set("http://b", false);
    await start(endpoints, { intervalMs: 60_000 }).start();
    await waitFor(() => (checks.get("http://b") ?? 0) >= 4, "three more checks of the silent member", 2000, 1);
    expect(checks.get("http://a")).toBe(1);
    answering.set("http://b", true);
    await waitFor(() => changes.includes("http://b answers"), "the silent member to answer again", 2000, 1);
    const answeredAt = checks.get("http://b")!;
    await new Promise((r) => setTimeout(r, 300)); // three retry pauses: none taken once it answers
    expect(checks.get("http://b")).toBe(answeredAt);
  });

  it("checks each member one at a time", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const slowClient = (): Etcd3 => {
      const exec = (): Promise<unknown> => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        return new Promise((resolve) => setTimeout(() => resolve(inFlight--), 20));
      };
      return { get: () => ({ options: () => ({ exec }) }), close: () => {} } as unknown as Etcd3;
    };
    await start(["http://a"], { clientOf: slowClient, intervalMs: 1, deadlineMs: 100 }).start();
    await new Promise((r) => setTimeout(r, 150));
    expect(maxInFlight).toBe(1);
  });
});
