import type { handleUnaryCall, ServerUnaryCall } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type * as pb from "../../gen/registry/v1/registry.js";
import { RegistryError } from "../registry/registry-error.js";
import type { ServiceRegistry } from "../registry/service-registry.js";
import { credentialsFromMetadata, type Authenticator } from "./auth.js";
import { peerHost } from "./peer-address.js";
import { toProtoInstance } from "./proto-mapping.js";
import { toServiceError } from "./status-mapping.js";
import type { WatchStreams } from "./watch-handler.js";

/** What the RegistryService handlers need. */
export interface HandlerDeps {
  readonly registry: ServiceRegistry;
  readonly auth: Authenticator;
  readonly logger: Logger;
  readonly watchStreams: WatchStreams;
}

/** Adapts an async function to a grpc-js unary handler with the one error mapping. */
function unary<Req, Res>(
  method: string,
  logger: Logger,
  fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (response) => callback(null, response),
        (err: unknown) => callback(toServiceError(err, logger, method)),
      );
  };
}

/**
 * The RegistryService implementation: authenticate, translate the request,
 * call the core, translate the answer. No registry logic lives here.
 */
export function registryHandlers(deps: HandlerDeps) {
  const { registry, auth, logger } = deps;
  return {
    register: unary<pb.RegisterRequest, pb.RegisterResponse>("Register", logger, async (req, call) => {
      auth.requireKey(credentialsFromMetadata(call.metadata));
      const host = req.host ?? peerHost(call.getPeer());
      if (host === undefined) {
        throw new RegistryError("invalid_argument", "host: caller address is unknown; set host explicitly");
      }
      const { instance, token } = await registry.register({
        serviceType: req.serviceType,
        port: req.port,
        host,
        metadata: req.metadata,
        ...(req.healthCheck ? { healthCheckPath: req.healthCheck.path } : {}),
      });
      return { serviceId: instance.id, token, instance: toProtoInstance(instance) };
    }),

    getByType: unary<pb.GetByTypeRequest, pb.GetByTypeResponse>("GetByType", logger, (req, call) => {
      auth.identify(credentialsFromMetadata(call.metadata));
      const { instances, revision } = registry.getByType(req.serviceType, req.includeUnhealthy);
      return { instances: instances.map(toProtoInstance), revision };
    }),

    getInstance: unary<pb.GetInstanceRequest, pb.GetInstanceResponse>("GetInstance", logger, (req, call) => {
      auth.identify(credentialsFromMetadata(call.metadata));
      requireId(req.instanceId);
      return { instance: toProtoInstance(registry.getInstance(req.instanceId)) };
    }),

    unregister: unary<pb.UnregisterRequest, pb.UnregisterResponse>("Unregister", logger, async (req, call) => {
      auth.requireOwnerOrKey(credentialsFromMetadata(call.metadata), req.instanceId);
      requireId(req.instanceId);
      const change = await registry.unregister(req.instanceId);
      return { instance: toProtoInstance(change.instance), revision: change.revision };
    }),

    listServices: unary<pb.ListServicesRequest, pb.ListServicesResponse>("ListServices", logger, (_req, call) => {
      auth.identify(credentialsFromMetadata(call.metadata));
      return registry.listServices();
    }),

    watchInstances: deps.watchStreams.handle,
  };
}

function requireId(id: string): void {
  if (id === "") throw new RegistryError("invalid_argument", "instance_id: must not be empty");
  if (id.length > 128) throw new RegistryError("invalid_argument", "instance_id: must be at most 128 characters");
}
