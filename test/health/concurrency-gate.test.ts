import { describe, expect, it } from "vitest";
import { ConcurrencyGate } from "../../src/health/concurrency-gate.js";

/** A task that runs until released, recording when it started. */
function controlled(started: number[], id: number) {
  let release!: (fail?: boolean) => void;
  const done = new Promise<void>((resolve, reject) => {
    release = (fail) => (fail ? reject(new Error(`task ${id} failed`)) : resolve());
  });
  return { task: () => (started.push(id), done), release: (fail?: boolean) => release(fail) };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("ConcurrencyGate", () => {
  it("runs at most `limit` tasks at once, the rest in arrival order as slots free", async () => {
    const gate = new ConcurrencyGate(2);
    const started: number[] = [];
    const tasks = [0, 1, 2, 3, 4].map((id) => controlled(started, id));
    for (const t of tasks) gate.run(t.task);
    expect(started).toEqual([0, 1]);
    expect([gate.running, gate.waiting]).toEqual([2, 3]);
    tasks[1]!.release();
    await settle();
    expect(started).toEqual([0, 1, 2]);
    tasks[0]!.release();
    tasks[2]!.release();
    await settle();
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect([gate.running, gate.waiting]).toEqual([2, 0]);
  });

  it("frees the slot of a task that rejects or throws", async () => {
    const gate = new ConcurrencyGate(1);
    const started: number[] = [];
    const failing = controlled(started, 0);
    const after = controlled(started, 2);
    gate.run(failing.task);
    gate.run(() => {
      started.push(1);
      throw new Error("not even a promise");
    });
    gate.run(after.task);
    failing.release(true);
    await settle();
    expect(started).toEqual([0, 1, 2]);
    expect(gate.running).toBe(1);
  });

  it("keeps arrival order across many waiting tasks (its backlog is compacted as it drains)", async () => {
    const gate = new ConcurrencyGate(3);
    const order: number[] = [];
    for (let i = 0; i < 5000; i++) gate.run(async () => void order.push(i));
    while (gate.running + gate.waiting > 0) await settle();
    expect(order).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it("refuses a limit that is not a positive integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new ConcurrencyGate(bad)).toThrow(/limit must be a positive integer/);
  });
});
