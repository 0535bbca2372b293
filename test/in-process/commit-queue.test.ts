import { describe, expect, it } from "vitest";
import { CommitQueue, type QueuedCommit } from "../../src/registry/commit-queue.js";
import type { Mutation } from "../../src/registry/registry-store.js";
import type { Change } from "../../src/registry/types.js";

const remove = (id: string): Mutation => ({ op: "remove", id, reason: "unregistered", at: 0 });

/** A committer that records each batch's ids and answers each mutation with a change numbered in arrival order. */
function recording() {
  const batches: string[][] = [];
  let revision = 0;
  let hold: Promise<void> = Promise.resolve();
  const commit = async (batch: readonly QueuedCommit[]): Promise<void> => {
    batches.push(batch.map((e) => (e.mutation.op === "register" ? e.mutation.instance.id : e.mutation.id)));
    await hold;
    for (const entry of batch) entry.resolve({ revision: ++revision } as Change);
  };
  return { batches, commit, holdNextBatches: (p: Promise<void>) => (hold = p) };
}

describe("CommitQueue", () => {
  it("hands every mutation asked for in one turn to the store as one batch, in order, once the turn is over", async () => {
    const r = recording();
    const queue = new CommitQueue(r.commit, { oneBatchAtATime: true });
    const answers = [queue.submit(() => remove("a")), queue.submit(() => remove("b")), queue.submit(() => remove("c"))];
    expect(r.batches).toEqual([]); // nothing yet: the turn is still running
    expect((await Promise.all(answers)).map((c) => c.revision)).toEqual([1, 2, 3]);
    expect(r.batches).toEqual([["a", "b", "c"]]);
    await queue.submit(() => remove("d"));
    expect(r.batches).toEqual([["a", "b", "c"], ["d"]]);
  });

  it("prepares each write when its batch is formed, in order; a write whose preparation throws fails alone", async () => {
    const r = recording();
    const queue = new CommitQueue(r.commit, { oneBatchAtATime: true });
    const prepared: string[] = [];
    const write = (id: string) => () => {
      prepared.push(id);
      if (id === "bad") throw new Error("port: must be 1-65535");
      return remove(id);
    };
    const answers = [queue.submit(write("a")), queue.submit(write("bad")), queue.submit(write("c"))];
    expect(prepared).toEqual([]); // not while the turn runs
    const settled = await Promise.allSettled(answers);
    expect(prepared).toEqual(["a", "bad", "c"]);
    expect(settled.map((s) => (s.status === "fulfilled" ? s.value.revision : (s.reason as Error).message))).toEqual([1, "port: must be 1-65535", 2]);
    expect(r.batches).toEqual([["a", "c"]]);
  });

  it("runs a turn's transport tasks first, in order, and what they submit synchronously joins that turn's batch", async () => {
    const r = recording();
    const queue = new CommitQueue(r.commit, { oneBatchAtATime: true });
    const ran: string[] = [];
    const answers: Promise<unknown>[] = [];
    for (const id of ["a", "throws", "b"]) {
      queue.runInTurn(() => {
        ran.push(id);
        if (id === "throws") throw new Error("a task's own failure");
        answers.push(queue.submit(() => remove(id)));
      });
    }
    expect(ran).toEqual([]); // not while the turn runs
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(ran).toEqual(["a", "throws", "b"]);
    await Promise.all(answers);
    expect(r.batches).toEqual([["a", "b"]]);
  });

  it("drops a mutation whose caller stopped listening while it waited, answering CANCELLED; the others go on", async () => {
    const r = recording();
    const queue = new CommitQueue(r.commit, { oneBatchAtATime: true });
    const gone = new AbortController();
    const kept = queue.submit(() => remove("kept"));
    const dropped = queue.submit(() => remove("dropped"), gone.signal);
    gone.abort();
    await expect(dropped).rejects.toMatchObject({ code: "cancelled" });
    await expect(kept).resolves.toMatchObject({ revision: 1 });
    expect(r.batches).toEqual([["kept"]]);
    // Already aborted when asked: refused at once, never queued.
    await expect(queue.submit(() => remove("late"), gone.signal)).rejects.toMatchObject({ code: "cancelled" });
    expect(r.batches).toEqual([["kept"]]);
  });

  it("one batch at a time: the next batch waits for the previous one to settle (stores of one process)", async () => {
    const r = recording();
    const queue = new CommitQueue(r.commit, { oneBatchAtATime: true });
    let release: () => void = () => {};
    r.holdNextBatches(new Promise<void>((resolve) => (release = resolve)));
    const first = queue.submit(() => remove("a"));
    await new Promise<void>((resolve) => setImmediate(resolve)); // the first batch is handed over, and held
    const second = queue.submit(() => remove("b"));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(r.batches).toEqual([["a"]]); // b waits behind a
    release();
    await Promise.all([first, second]);
    expect(r.batches).toEqual([["a"], ["b"]]);
  });

  it("overlapping batches for a store that orders its own commits (shared stores)", async () => {
    const r = recording();
    const queue = new CommitQueue(r.commit, { oneBatchAtATime: false });
    let release: () => void = () => {};
    r.holdNextBatches(new Promise<void>((resolve) => (release = resolve)));
    const first = queue.submit(() => remove("a"));
    await new Promise<void>((resolve) => setImmediate(resolve));
    const second = queue.submit(() => remove("b"));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(r.batches).toEqual([["a"], ["b"]]); // b did not wait for a
    release();
    await Promise.all([first, second]);
  });

  it("drain hands over what waits at once and resolves when every batch is settled", async () => {
    const r = recording();
    const queue = new CommitQueue(r.commit, { oneBatchAtATime: true });
    const answer = queue.submit(() => remove("a"));
    await queue.drain();
    expect(r.batches).toEqual([["a"]]);
    await expect(answer).resolves.toMatchObject({ revision: 1 });
  });
});
