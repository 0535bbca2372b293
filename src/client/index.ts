/**
 * The client SDK (SPEC 4.6): `RegistryClient`, `registerSelf`, the
 * `registry:///` name resolver for grpc-js channels, and a listener serving
 * gRPC and the health endpoint on one port.
 */
export { RegistryClient } from "./registry-client.js";
export type {
  GetByTypeOptions,
  InstanceList,
  RegisteredInstance,
  RegisterOptions,
  RegistryCallOptions,
  RegistryClientOptions,
  ServiceList,
  Unregistered,
} from "./registry-client.js";
export type { AuthSource, RegistryAuth } from "./auth.js";
export { Backoff, type BackoffOptions } from "./backoff.js";
export { RegistryClientError } from "./client-error.js";
export type { ConnectionOptions } from "./registry-connections.js";
export { RegistryWatch, type RegistryWatchOptions, type WatchDisconnect } from "./registry-watch.js";
export { RegistrySession, type KeepAliveOptions, type RegistrySessionEvents } from "./registry-session.js";
export { isChangeEvent, type RegistryChangeEvent, type RegistryWatchEvent } from "./watch-events.js";
export {
  registerSelf,
  SelfRegistration,
  SESSION_METADATA_KEY,
  type RegisterSelfOptions,
  type SelfRegistrationEvents,
} from "./register-self.js";
export {
  registerRegistryResolver,
  ROUND_ROBIN_SERVICE_CONFIG,
  type RegistryResolverOptions,
  type ResolverUpdate,
} from "./registry-resolver.js";
export { HealthyInstances, type HealthySet, type ResolvedInstance } from "./healthy-instances.js";
export { listenWithHealth, type HealthListener, type HealthListenerOptions } from "./health-listener.js";
// The shapes results carry (types only: nothing of the core is loaded).
export type { Health, HealthCheckKind, HealthCheckSpec, Instance, RemovalReason, ServiceSummary } from "../registry/types.js";
export type { HealthCheckInput } from "../registry/validation.js";
