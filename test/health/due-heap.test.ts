import { describe, expect, it } from "vitest";
import { DueHeap, type HeapNode } from "../../src/health/due-heap.js";

describe("DueHeap", () => {
  it("pops in due order, FIFO among equal dues, with removals anywhere", () => {
    const heap = new DueHeap<number>();
    let seed = 7;
    const rand = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const live = new Set<HeapNode<number>>();
    for (let i = 0; i < 500; i++) live.add(heap.push(Math.floor(rand() * 50), i));
    for (const node of [...live]) {
      if (rand() < 0.3) {
        expect(heap.remove(node)).toBe(true);
        expect(heap.remove(node)).toBe(false);
        live.delete(node);
      }
    }
    expect(heap.size).toBe(live.size);
    const expected = [...live].sort((a, b) => a.due - b.due || a.value - b.value).map((n) => n.value);
    const popped: number[] = [];
    for (let node = heap.pop(); node; node = heap.pop()) popped.push(node.value);
    expect(popped).toEqual(expected);
    expect(heap.peek()).toBeUndefined();
  });
});
