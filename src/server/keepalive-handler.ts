import { status as grpcStatus, type ServerDuplexStream, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type * as pb from "../../gen/registry/v1/registry.js";
import { peerHost } from "../api/peer-address.js";
import type { RegistryApi } from "../api/registry-api.js";
import type { RegistryError } from "../registry/registry-error.js";
import { credentialsFromMetadata } from "./auth.js";
import { toServiceError } from "./status-mapping.js";

/** Why a session ended, in the words watchers see as the failure reason. */
export const SESSION_CLOSED = "session closed by the instance";
export const SESSION_LOST = "session lost: its connection was reset or closed, or stopped answering keepalive pings";

type KeepAliveCall = ServerDuplexStream<pb.KeepAliveRequest, pb.KeepAliveResponse>;

/**
 * KeepAlive: the first request names the instance, whose own credentials the
 * call carries; once the session is open the server answers at once with the
 * revision, then every `intervalMs`, so the connection is never idle and
 * HTTP/2 keepalive (the server's pings) finds a peer that froze or went
 * away. Later requests are read and ignored. The session ends, and the
 * instance turns UNHEALTHY at once, when the stream does: the instance
 * half-closed it (its status is OK), or it was cancelled (the process died
 * and its kernel reset the connection, the connection was lost, or a
 * keepalive ping went unanswered). The registry ends it with NOT_FOUND when
 * the instance is removed, and with UNAVAILABLE at shutdown.
 */
export function keepAliveHandler(
  api: RegistryApi,
  logger: Logger,
  intervalMs: number,
  firstMessageTimeoutMs: number,
): (call: KeepAliveCall) => void {
  return (call) => {
    let session: { close(reason: string): void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    let over = false;
    // A stream that never names its instance holds a slot for nothing.
    const unnamed = setTimeout(() => {
      finish(undefined, { code: grpcStatus.INVALID_ARGUMENT, details: `instance_id: the first KeepAlive request must name the instance within ${firstMessageTimeoutMs} ms` });
    }, firstMessageTimeoutMs);
    unnamed.unref();
    const finish = (reason: string | undefined, status?: Partial<ServiceError>): void => {
      if (over) return;
      over = true;
      clearInterval(timer);
      clearTimeout(unnamed);
      if (reason !== undefined) session?.close(reason);
      if (status) call.emit("error", status);
    };
    // The registry ended the session itself (removed instance, shutdown): no end to report back.
    const ended = (why: RegistryError): void => finish(undefined, toServiceError(why, logger, "KeepAlive"));
    call.on("cancelled", () => finish(SESSION_LOST));
    call.on("error", () => finish(SESSION_LOST));
    // grpc-js ends the request side of a call whose connection died too, just
    // before it reports the call cancelled: only an end not followed by that
    // is the instance closing its session.
    call.on("end", () => {
      setImmediate(() => {
        if (call.cancelled) return finish(SESSION_LOST);
        finish(SESSION_CLOSED);
        call.end();
      });
    });
    let first = true;
    call.on("data", (request: pb.KeepAliveRequest) => {
      if (!first || over) return;
      first = false;
      clearTimeout(unnamed);
      const open = async (): Promise<{ readonly revision: number; close(reason: string): void }> => {
        const ctx = { credentials: credentialsFromMetadata(call.metadata), peerHost: peerHost(call.getPeer()) };
        return api.openSession(ctx, request.instanceId, ended);
      };
      open().then(
        (opened) => {
          if (over) {
            // The stream ended while the session was being opened.
            opened.close(call.cancelled ? SESSION_LOST : SESSION_CLOSED);
            return;
          }
          session = opened;
          call.write({ revision: opened.revision });
          timer = setInterval(() => call.write({ revision: api.registry.revision }), intervalMs);
          timer.unref();
        },
        (err: unknown) => finish(undefined, toServiceError(err, logger, "KeepAlive")),
      );
    });
  };
}
