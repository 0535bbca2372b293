/**
 * Waits until `promise` settles, however it settles, or until `ms` have
 * passed, whichever comes first; answers whether it settled in time. For
 * bounded waits at shutdown: what is still pending then is cut, not awaited.
 *
 * @example
 * if (!(await settledWithin(drained, graceMs))) cutTheRest();
 */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
