/**
 * Event-driven waiting on state that grows or changes in callbacks: the code
 * that changes the state calls `notify()`, and `until()` resolves as soon as
 * its test holds (checked at once and at every notify), or rejects after
 * `timeoutMs` naming `what`, so a hung test says what never happened.
 * Prefer it to `waitFor` (polling, in wait-for.ts) whenever such a callback exists.
 *
 * @example
 *   const waiter = new Waiter();
 *   scheduler.on("result", (r) => { results.push(r); waiter.notify(); });
 *   await waiter.until(() => results.length === 3, "three results", 5000);
 */
export class Waiter {
  readonly #pending = new Set<() => void>();

  /** Re-checks every pending `until()`. */
  notify(): void {
    for (const check of [...this.#pending]) check();
  }

  until(test: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!test()) return;
        this.#pending.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#pending.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#pending.add(check);
    });
  }
}
