import { status, type handleUnaryCall } from "@grpc/grpc-js";

/**
 * Runs a unary handler for the calls that arrived in one event-loop turn
 * back to back, in arrival order, once the turn's reads are done (in an
 * immediate).
 *
 * grpc-js calls a handler as soon as its request is decoded, between its own
 * work for the next call, so each Register ran its code path with cold
 * caches: inside the server the second of two identical registrations in a
 * row cost half the first. Batched, a turn's calls run hot and their answers
 * leave together (docs/performance.md has the figures). With one call in
 * flight there is nothing to batch, and the immediate costs a few percent.
 *
 * A call cancelled while it waited (deadline, client gone) is not run: its
 * status is already sent, and the client, never told of the registration,
 * would register again when it retries.
 */
export function batchPerLoopTurn<Req, Res>(handler: handleUnaryCall<Req, Res>): handleUnaryCall<Req, Res> {
  let pending: Parameters<handleUnaryCall<Req, Res>>[] = [];
  const runPending = (): void => {
    const calls = pending;
    pending = [];
    for (const [call, callback] of calls) {
      if (call.cancelled) continue;
      try {
        handler(call, callback);
      } catch {
        // As grpc-js answers a handler that throws; the next calls still run.
        callback({ code: status.UNKNOWN, details: "Unknown error" });
      }
    }
  };
  return (call, callback) => {
    if (pending.push([call, callback]) === 1) setImmediate(runPending);
  };
}
