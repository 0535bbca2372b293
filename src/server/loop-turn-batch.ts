import { status, type handleUnaryCall, type sendUnaryData } from "@grpc/grpc-js";

/**
 * Runs a unary handler for the calls that arrived in one event-loop turn
 * back to back, in arrival order, once the turn's reads are done (in an
 * immediate).
 *
 * grpc-js calls a handler as soon as its request is decoded, between its own
 * work for the next call, so each Register ran its code path with cold
 * caches: inside the server the second of two identical registrations in a
 * row cost half the first. Batched, a turn's calls run hot
 * (docs/performance.md has the figures). With one call in flight there is
 * nothing to batch, and the immediate costs a few percent.
 *
 * A call that ended while it waited (client gone, server forced down) is not
 * run: nobody would hear the answer, and a client that retries would
 * register twice.
 */
export function batchPerLoopTurn<Req, Res>(handler: handleUnaryCall<Req, Res>): handleUnaryCall<Req, Res> {
  let pending: Parameters<handleUnaryCall<Req, Res>>[] = [];
  const runPending = (): void => {
    const calls = pending;
    pending = []; // calls arriving while these run wait for the next immediate
    for (const [call, callback] of calls) {
      if (call.cancelled) continue;
      try {
        handler(call, callback);
      } catch {
        answerUnknown(callback); // grpc-js's default answer to a handler that throws
      }
    }
  };
  return (call, callback) => {
    if (pending.push([call, callback]) === 1) setImmediate(runPending);
  };
}

/** Answers UNKNOWN; a callback that throws again must not cost the calls after it their answers. */
function answerUnknown<Res>(callback: sendUnaryData<Res>): void {
  try {
    callback({ code: status.UNKNOWN, details: "Unknown error" });
  } catch {
    // the call is beyond answering
  }
}
