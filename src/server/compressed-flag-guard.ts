import type { Http2Stream } from "node:http2";
import { status } from "@grpc/grpc-js";
import type { CallHooksFactory } from "./call-hooks.js";

/**
 * Refuses a request message whose Compressed-Flag the call cannot honour,
 * with INTERNAL naming the flag, as grpc's doc/compression.md requires: a
 * message flagged compressed (1) on a call without a grpc-encoding other than
 * identity, and any flag other than 0 or 1. grpc-js reads such a message as
 * uncompressed and serves it: bytes the client meant one way, read another.
 *
 * Call hooks (see call-hooks.ts). grpc-js hands interceptors nothing of the
 * message framing, so they must run in the innermost interceptor (first in
 * the server's `interceptors` list): they read the raw request stream and the
 * call's encoding from grpc-js's base call, and watch each DATA chunk before
 * grpc-js's own listener does. Their status marks the call ended, so grpc-js
 * drops the message unread. Where grpc-js's base call does not look as
 * expected, they leave the call untouched (test/server/compressed-flag.test.ts
 * fails then).
 */
export function compressedFlagGuardHooks(): CallHooksFactory {
  return (_method, next, call) => {
    const base = next as unknown as { stream?: unknown; incomingEncoding?: unknown };
    const stream = base.stream as Http2Stream | undefined;
    if (typeof stream?.prependListener !== "function" || typeof base.incomingEncoding !== "string") return {};
    const identity = base.incomingEncoding === "identity";
    const framing = new MessageFlags();
    const onData = (chunk: Buffer): void => {
      const flag = framing.firstInvalid(chunk, identity);
      if (flag === undefined) return;
      stream.off("data", onData);
      call.sendStatus({
        code: status.INTERNAL,
        details:
          flag === 1
            ? "invalid Compressed-Flag: message flagged compressed, but the call has no grpc-encoding (or identity)"
            : `invalid Compressed-Flag: ${flag} (must be 0 or 1)`,
      });
    };
    stream.prependListener("data", onData);
    stream.once("close", () => stream.off("data", onData));
    return {};
  };
}

class MessageFlags {
  /** Bytes of the current 5-byte prefix still to read (5: at a message boundary). */
  private prefixLeft = 5;
  private length = 0;
  /** Bytes of the current message body still to skip. */
  private bodyLeft = 0;

  /** The first flag in `chunk` that is not allowed (1 is, unless `identity`), or undefined. */
  firstInvalid(chunk: Buffer, identity: boolean): number | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        const skip = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= skip;
        i += skip;
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.prefixLeft === 5) {
        if (byte > 1 || (byte === 1 && identity)) return byte;
      } else {
        this.length = this.length * 256 + byte;
      }
      if (--this.prefixLeft === 0) {
        this.bodyLeft = this.length;
        this.prefixLeft = 5;
        this.length = 0;
      }
    }
    return undefined;
  }
}
