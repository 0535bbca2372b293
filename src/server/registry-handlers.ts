import type { handleUnaryCall, ServerUnaryCall } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type * as pb from "../../gen/registry/v1/registry.js";
import { andThen, type PresentedCredentials } from "../api/authenticator.js";
import { peerHost } from "../api/peer-address.js";
import type { CallSignals } from "../api/call-signals.js";
import type { CallContext, RegistryApi } from "../api/registry-api.js";
import type { AbortState } from "../registry/commit-queue.js";
import { RegistryError } from "../registry/registry-error.js";
import { credentialsFromMetadata } from "./auth.js";
import { fromProtoHealthCheck, toProtoInstance } from "./proto-mapping.js";
import { encodeTypeAnswer, TypeAnswerCache } from "./type-answer-cache.js";
import { toServiceError } from "./status-mapping.js";
import type { WatchStreams } from "./watch-handler.js";

/** What the RegistryService handlers need. */
export interface HandlerDeps {
  readonly api: RegistryApi;
  readonly logger: Logger;
  readonly watchStreams: WatchStreams;
  /** Says when shutdown stops waiting for calls in flight: each write's `CallContext.signal` reads it. */
  readonly signals: CallSignals;
}

/**
 * Adapts a handler to a grpc-js unary handler with the one error mapping. A
 * synchronous answer is sent at once (no promise hops: reads answer from
 * memory); a thrown error or a rejection becomes the mapped status. The
 * call's context lives until its answer is sent.
 */
function unary<Req, Res>(
  method: string,
  logger: Logger,
  signals: CallSignals,
  fn: (request: Req, ctx: GrpcCallContext) => Promise<Res> | Res,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let answer: Promise<Res> | Res;
    let ctx: GrpcCallContext | undefined;
    try {
      ctx = new GrpcCallContext(call, signals); // a malformed credential throws here
      answer = fn(call.request, ctx);
    } catch (err) {
      ctx?.end();
      callback(toServiceError(err, logger, method));
      return;
    }
    if (answer instanceof Promise) {
      const answered = ctx;
      answer.then(
        (response) => {
          answered.end();
          callback(null, response);
        },
        (err: unknown) => {
          answered.end();
          callback(toServiceError(err, logger, method));
        },
      );
    } else {
      ctx.end();
      callback(null, answer);
    }
  };
}

/**
 * The call context of a gRPC call: credentials from metadata; the caller's
 * address, parsed only when asked for (only a Register without `host` needs
 * it); and the call's abort state, read from the call itself (no
 * AbortSignal per write: see `AbortState`). A class, not an object literal
 * with a getter: V8 puts such a literal in dictionary mode (a hash table per
 * call, slow at every read); bench scenario 2 (GetByType against its
 * pre-encoded ceiling) shows the difference.
 */
class GrpcCallContext implements CallContext, AbortState {
  readonly credentials: PresentedCredentials;
  private answered = false;

  constructor(
    private readonly call: ServerUnaryCall<unknown, unknown>,
    private readonly signals: CallSignals,
  ) {
    this.credentials = credentialsFromMetadata(call.metadata);
  }

  get signal(): AbortState {
    return this;
  }

  /**
   * True when grpc-js reports the call cancelled (the client cancelled or
   * went away: RST_STREAM, connection lost; or the deadline passed) before
   * its answer, and once shutdown stops waiting for calls in flight.
   */
  get aborted(): boolean {
    return (this.call.cancelled && !this.answered) || this.signals.stopping;
  }

  /** The answer is on its way: grpc-js reports every call "cancelled" once its status is sent, which is no news. */
  end(): void {
    this.answered = true;
  }

  get peerHost(): string | undefined {
    return peerHost(this.call.getPeer());
  }

  /** grpc-js reports "no deadline" as Infinity. */
  get deadline(): number | undefined {
    const deadline = this.call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() : deadline;
    return Number.isFinite(ms) ? ms : undefined;
  }
}

/**
 * A write's handler, run in the registry's next write turn with the other
 * writes of that turn (see CommitQueue). A call that ended while it waited
 * is not run: nobody would hear the answer, and a client that retries would
 * register twice.
 */
function inWriteTurn<Req, Res>(api: RegistryApi, handler: handleUnaryCall<Req, Res>): handleUnaryCall<Req, Res> {
  return (call, callback) => api.inWriteTurn(() => {
    if (!call.cancelled) handler(call, callback);
  });
}

/**
 * The RegistryService implementation: decode the request, call the API layer
 * (auth, checks, core), encode the answer. No registry logic lives here.
 */
export function registryHandlers(deps: HandlerDeps) {
  const { api, logger, signals } = deps;
  const typeAnswers = new TypeAnswerCache();
  return {
    register: inWriteTurn(api, unary<pb.RegisterRequest, pb.RegisterResponse>("Register", logger, signals, async (req, ctx) => {
      const { path, check } = fromProtoHealthCheck(req.healthCheck);
      const { instance, token } = await api.register(ctx, {
        serviceType: req.serviceType,
        port: req.port,
        host: req.host,
        metadata: req.metadata,
        healthCheckPath: path,
        healthCheck: check,
      });
      return { serviceId: instance.id, token, instance: toProtoInstance(instance) };
    })),

    getByType: unary<pb.GetByTypeRequest, pb.GetByTypeResponse>("GetByType", logger, signals, (req, ctx) => {
      const { includeUnhealthy, includeDraining, selector } = req;
      const answer = api.getByType(ctx, req.serviceType, { includeUnhealthy, includeDraining, selector });
      // Pre-encoded bytes; the service definition's serializer passes them through. Answers to a
      // selector are not cached: callers choose selectors freely, the cache's keys must stay few.
      const cached = Object.keys(selector).length === 0;
      const key = `${includeUnhealthy ? "u" : "-"}${includeDraining ? "d" : "-"}/${req.serviceType}`;
      return andThen(answer, ({ instances, revision, panic }) =>
        (cached ? typeAnswers.encode(key, instances, revision, panic) : encodeTypeAnswer(instances, revision, panic)) as unknown as pb.GetByTypeResponse,
      );
    }),

    getInstance: unary<pb.GetInstanceRequest, pb.GetInstanceResponse>("GetInstance", logger, signals, (req, ctx) => {
      return andThen(api.getInstance(ctx, req.instanceId), (instance) => ({ instance: toProtoInstance(instance) }));
    }),

    unregister: inWriteTurn(api, unary<pb.UnregisterRequest, pb.UnregisterResponse>("Unregister", logger, signals, async (req, ctx) => {
      const change = await api.unregister(ctx, req.instanceId);
      return { instance: toProtoInstance(change.instance), revision: change.revision };
    })),

    drain: inWriteTurn(api, unary<pb.DrainRequest, pb.DrainResponse>("Drain", logger, signals, async (req, ctx) => {
      const { instance, revision } = await api.drain(ctx, req.instanceId);
      return { instance: toProtoInstance(instance), revision };
    })),

    heartbeat: unary<pb.HeartbeatRequest, pb.HeartbeatResponse>("Heartbeat", logger, signals, async (req, ctx) => {
      return { revision: await api.heartbeat(ctx, req.instanceId) };
    }),

    listServices: unary<pb.ListServicesRequest, pb.ListServicesResponse>("ListServices", logger, signals, (_req, ctx) => {
      return api.listServices(ctx);
    }),

    watchInstances: deps.watchStreams.handle,
  };
}
