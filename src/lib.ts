/**
 * service-registry as a library: the registry core, its stores, the gRPC
 * server and the HTTP server (JSON API, metrics, health) that front it.
 * Importing it starts nothing; `src/index.ts` is the server's entry point.
 * The client SDK alone, without the server's native modules, is
 * `service-registry/client`.
 */
export { ServiceRegistry, type RegistryEvents, type Registration } from "./registry/service-registry.js";
export type { ServiceRegistryOptions } from "./registry/registry-options.js";
export type { RegistryLogger } from "./logging/registry-logger.js";
export { RegistryError, type RegistryErrorCode } from "./registry/registry-error.js";
export type { Change, Health, Instance, RemovalReason, ServiceSummary, WatchEvent } from "./registry/types.js";
export type { RegisterInput } from "./registry/validation.js";
export { limits } from "./registry/validation.js";
export type { Watcher, WatchOptions } from "./registry/watcher.js";
export { RegistrationKeys } from "./registry/credentials.js";
export { MemoryStore } from "./store/memory-store.js";
export type { RegistryStore, Mutation, StoreState } from "./registry/registry-store.js";
export { RegistryGrpcServer, type RegistryGrpcServerOptions } from "./server/grpc-server.js";
export { RegistryApi, type CallContext, type RegisterRequest } from "./api/registry-api.js";
export { Authenticator, type KeyPrincipal, type PresentedCredentials, type Principal } from "./api/authenticator.js";
export { AuthFailureLimiter, type AuthFailureLimiterOptions } from "./api/auth-failure-limiter.js";
export { RegistryHttpServer, type RegistryHttpServerOptions } from "./http/http-server.js";
export { jsonApiRoutes } from "./http/json-api.js";
export { opsRoutes } from "./http/ops-routes.js";
export type { Route } from "./http/routes.js";
export { RegistryMetrics } from "./observability/registry-metrics.js";
export { ServingState, type NotServingReason } from "./observability/serving-state.js";
export type { CommitObserver, CommitOutcome } from "./registry/commit-outcomes.js";
export { instrumentProbe } from "./observability/instrumented-probe.js";
export { loadConfig, ConfigError } from "./config/load-config.js";
export { loadTls, type TlsMaterial } from "./config/tls.js";
export { startServer, type RunningServer, type StartOptions } from "./app/start-server.js";
// The client SDK: RegistryClient, registerSelf, the registry:/// resolver (SPEC 4.6).
export * from "./client/index.js";
