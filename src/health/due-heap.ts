/**
 * A handle to one entry of a {@link DueHeap}. Keep it to remove the entry
 * later; `index` is maintained by the heap and is -1 once the entry is out.
 */
export interface HeapNode<T> {
  readonly due: number;
  readonly value: T;
  /** Insertion order, so entries due at the same time come out FIFO. */
  readonly seq: number;
  index: number;
}

/**
 * A binary min-heap ordered by due time, with O(log n) removal of any entry.
 *
 * The probe scheduler keeps one entry per target and arms a single timer for
 * the earliest one; removal by handle means a removed target leaves nothing
 * behind, so churn cannot grow the heap.
 *
 * @example
 * const heap = new DueHeap<string>();
 * const a = heap.push(20, "a");
 * heap.push(10, "b");
 * heap.remove(a);
 * heap.pop()?.value; // "b"
 */
export class DueHeap<T> {
  readonly #nodes: HeapNode<T>[] = [];
  #seq = 0;

  /** Number of entries in the heap. */
  get size(): number {
    return this.#nodes.length;
  }

  /** Adds `value` due at `due` and returns its handle. */
  push(due: number, value: T): HeapNode<T> {
    const node: HeapNode<T> = { due, value, seq: this.#seq++, index: this.#nodes.length };
    this.#nodes.push(node);
    this.#up(node.index);
    return node;
  }

  /** The earliest entry, left in place. */
  peek(): HeapNode<T> | undefined {
    return this.#nodes[0];
  }

  /** Removes and returns the earliest entry. */
  pop(): HeapNode<T> | undefined {
    const top = this.#nodes[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Removes `node` if it is still in this heap; returns whether it was. */
  remove(node: HeapNode<T>): boolean {
    const i = node.index;
    if (i < 0 || this.#nodes[i] !== node) return false;
    const last = this.#nodes.pop() as HeapNode<T>;
    node.index = -1;
    if (last !== node) {
      this.#nodes[i] = last;
      last.index = i;
      // The moved entry may belong above or below its new slot.
      this.#up(i);
      this.#down(last.index);
    }
    return true;
  }

  #less(a: HeapNode<T>, b: HeapNode<T>): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    const a = this.#nodes[i] as HeapNode<T>;
    const b = this.#nodes[j] as HeapNode<T>;
    this.#nodes[i] = b;
    this.#nodes[j] = a;
    b.index = i;
    a.index = j;
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(this.#nodes[i] as HeapNode<T>, this.#nodes[parent] as HeapNode<T>)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const n = this.#nodes.length;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < n && this.#less(this.#nodes[left] as HeapNode<T>, this.#nodes[least] as HeapNode<T>)) least = left;
      if (right < n && this.#less(this.#nodes[right] as HeapNode<T>, this.#nodes[least] as HeapNode<T>)) least = right;
      if (least === i) return;
      this.#swap(i, least);
      i = least;
    }
  }
}
