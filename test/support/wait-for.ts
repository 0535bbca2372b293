/**
 * Polls `cond` until it holds: for state that has no event to await (a
 * counter on a server, a process that should be gone, a key in etcd). Where
 * an event exists, await it instead.
 *
 * The wait is bounded: after `timeoutMs` it fails with a message naming
 * `what`, so a hung test says what never happened. `cond` may be async (an
 * etcd read); if it throws, the wait ends with that error (a process that
 * exited while we waited for its output). `what` may be a function, read
 * only at failure time, to include output gathered while waiting.
 *
 * @example
 *   await waitFor(() => server.watchStreamCount === 0, "the stalled stream to be ended", 3000);
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string | (() => string),
  timeoutMs = 5000,
  stepMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}
