import type { Deadline, handleUnaryCall, Metadata, ServerUnaryCall } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type * as pb from "../../gen/registry/v1/registry.js";
import { andThen, type PresentedCredentials } from "../api/authenticator.js";
import { peerHost } from "../api/peer-address.js";
import type { CallContext, RegistryApi } from "../api/registry-api.js";
import { credentialsFromMetadata } from "./auth.js";
import { toProtoInstance } from "./proto-mapping.js";
import { TypeAnswerCache } from "./type-answer-cache.js";
import { toServiceError } from "./status-mapping.js";
import type { WatchStreams } from "./watch-handler.js";

/** What the RegistryService handlers need. */
export interface HandlerDeps {
  readonly api: RegistryApi;
  readonly logger: Logger;
  readonly watchStreams: WatchStreams;
}

/**
 * Adapts a handler to a grpc-js unary handler with the one error mapping. A
 * synchronous answer is sent at once (no promise hops: reads answer from
 * memory); a thrown error or a rejection becomes the mapped status.
 */
function unary<Req, Res>(
  method: string,
  logger: Logger,
  fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let answer: Promise<Res> | Res;
    try {
      answer = fn(call.request, call);
    } catch (err) {
      callback(toServiceError(err, logger, method));
      return;
    }
    if (answer instanceof Promise) {
      answer.then(
        (response) => callback(null, response),
        (err: unknown) => callback(toServiceError(err, logger, method)),
      );
    } else callback(null, answer);
  };
}

/**
 * The call context of a gRPC call: credentials from metadata, and the
 * caller's address, parsed only when asked for (only a Register without
 * `host` needs it). A class, not an object literal with a getter: V8 puts
 * such a literal in dictionary mode (a hash table per call, slow at every
 * read); bench scenario 2 (GetByType against its pre-encoded ceiling) shows
 * the difference.
 */
class GrpcCallContext implements CallContext {
  readonly credentials: PresentedCredentials;

  constructor(private readonly call: { readonly metadata: Metadata; getPeer(): string; getDeadline(): Deadline }) {
    this.credentials = credentialsFromMetadata(call.metadata);
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
 * The RegistryService implementation: decode the request, call the API layer
 * (auth, checks, core), encode the answer. No registry logic lives here.
 */
export function registryHandlers(deps: HandlerDeps) {
  const { api, logger } = deps;
  const typeAnswers = new TypeAnswerCache();
  return {
    register: unary<pb.RegisterRequest, pb.RegisterResponse>("Register", logger, async (req, call) => {
      const { instance, token } = await api.register(new GrpcCallContext(call), {
        serviceType: req.serviceType,
        port: req.port,
        host: req.host,
        metadata: req.metadata,
        healthCheckPath: req.healthCheck?.path,
      });
      return { serviceId: instance.id, token, instance: toProtoInstance(instance) };
    }),

    getByType: unary<pb.GetByTypeRequest, pb.GetByTypeResponse>("GetByType", logger, (req, call) => {
      const answer = api.getByType(new GrpcCallContext(call), req.serviceType, req.includeUnhealthy);
      // Pre-encoded bytes; the service definition's serializer passes them through.
      const key = `${req.includeUnhealthy ? "all" : "healthy"}/${req.serviceType}`;
      return andThen(answer, ({ instances, revision }) => typeAnswers.encode(key, instances, revision) as unknown as pb.GetByTypeResponse);
    }),

    getInstance: unary<pb.GetInstanceRequest, pb.GetInstanceResponse>("GetInstance", logger, (req, call) => {
      return andThen(api.getInstance(new GrpcCallContext(call), req.instanceId), (instance) => ({ instance: toProtoInstance(instance) }));
    }),

    unregister: unary<pb.UnregisterRequest, pb.UnregisterResponse>("Unregister", logger, async (req, call) => {
      const change = await api.unregister(new GrpcCallContext(call), req.instanceId);
      return { instance: toProtoInstance(change.instance), revision: change.revision };
    }),

    listServices: unary<pb.ListServicesRequest, pb.ListServicesResponse>("ListServices", logger, (_req, call) => {
      return api.listServices(new GrpcCallContext(call));
    }),

    watchInstances: deps.watchStreams.handle,
  };
}
