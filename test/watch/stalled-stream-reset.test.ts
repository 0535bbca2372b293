import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type ServerHttp2Stream } from "node:http2";
import { ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { WatchInstancesRequest } from "../../gen/registry/v1/registry.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
import { waitFor } from "../support/wait-for.js";
import { bigMetadata } from "./watch-helpers.js";

const STALL_MS = 300;
/** The watch handler's default grace between the status and the reset. */
const RESET_GRACE_MS = 2000;

function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  return frame;
}

/**
 * Opens WatchInstances on a raw node:http2 session with a small stream window
 * and never reads it: the server's writes back up behind flow control, as
 * with a client process that hangs.
 */
function openNeverRead(session: ClientHttp2Session): ClientHttp2Stream {
  const stream = session.request({
    ":method": "POST",
    ":path": "/registry.v1.RegistryService/WatchInstances",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${TEST_KEY}`,
  });
  stream.on("error", () => {});
  stream.pause();
  stream.end(grpcFrame(WatchInstancesRequest.encode({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: {} }).finish()));
  return stream;
}

describe("a watch stream whose client stopped reading", () => {
  let h: Harness | undefined;
  const sessions: ClientHttp2Session[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await h?.close();
    h = undefined;
  });

  it("is reset on the wire (RST_STREAM) within the stall timeout plus a few seconds, and the server lets it go", async () => {
    // The server side of each watch: grpc-js's base call holds it, at the end of the
    // chain of the interceptors inside this one (the server adds its own).
    const serverStreams: ServerHttp2Stream[] = [];
    const capture: ServerInterceptor = (method, next) => {
      let link = next as unknown as { stream?: ServerHttp2Stream; nextCall?: unknown };
      while (!link.stream && link.nextCall) link = link.nextCall as typeof link;
      if (method.path.endsWith("/WatchInstances") && link.stream) serverStreams.push(link.stream);
      return new ServerInterceptingCall(next);
    };
    h = await startHarness({ server: { watchStallTimeoutMs: STALL_MS, serverOptions: { interceptors: [capture] } } });
    // ~3 MB of snapshot: far beyond the stream and connection windows.
    const metadata = bigMetadata("m");
    for (let i = 0; i < 100; i++) await h.registry.register({ serviceType: "big", host: "10.0.0.1", port: 1000 + i, metadata });

    const session = connect(`http://127.0.0.1:${h.port}`, { settings: { initialWindowSize: 1024 } });
    session.on("error", () => {});
    sessions.push(session);
    const streams = Array.from({ length: 3 }, () => openNeverRead(session));
    const closed = streams.map(
      (s) => new Promise<{ rstCode: number; at: number }>((resolve) => s.on("close", () => resolve({ rstCode: s.rstCode, at: Date.now() }))),
    );
    await waitFor(() => h!.server.watchStreamCount === 3, "the three watch streams to open", 5000);
    const opened = Date.now();
    await waitFor(() => h!.server.watchStreamCount === 0, "the stalled streams to be ended by the handler", 5000);
    expect(serverStreams).toHaveLength(3);
    // Ended by the handler, but still holding what the client would not take.
    expect(serverStreams.some((s) => !s.destroyed && s.writableLength > 0)).toBe(true);

    const bound = STALL_MS + RESET_GRACE_MS + 3000;
    const outcome = await Promise.race([
      Promise.all(closed),
      new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), bound).unref()),
    ]);
    expect(outcome, `the client streams were not reset within ${bound} ms`).not.toBe("timeout");
    for (const { rstCode, at } of outcome as { rstCode: number; at: number }[]) {
      // ENHANCE_YOUR_CALM: grpc-js clients report it as RESOURCE_EXHAUSTED.
      expect(rstCode).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(at - opened).toBeLessThan(bound);
    }
    // The server's streams are gone with their buffers.
    await waitFor(() => serverStreams.every((s) => s.destroyed), "the server's HTTP/2 streams to be destroyed", 2000);
    expect(serverStreams.map((s) => s.writableLength)).toEqual([0, 0, 0]);
    // The connection and the server stay usable: a new stream on the same session is served.
    const again = openNeverRead(session);
    await waitFor(() => h!.server.watchStreamCount === 1, "a new watch stream on the same connection", 5000);
    again.close(constants.NGHTTP2_CANCEL);
    await waitFor(() => h!.server.watchStreamCount === 0, "the cancelled stream to be let go", 5000);
  }, 20_000);
});
