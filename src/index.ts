/**
 * service-registry as a library: the registry core, its stores, and the gRPC
 * server that fronts it.
 */
export { ServiceRegistry, type RegistryEvents, type Registration } from "./registry/service-registry.js";
export type { ServiceRegistryOptions } from "./registry/registry-options.js";
export { RegistryError, type RegistryErrorCode } from "./registry/registry-error.js";
export type { Change, Health, Instance, RemovalReason, ServiceSummary, WatchEvent } from "./registry/types.js";
export type { RegisterInput } from "./registry/validation.js";
export { limits } from "./registry/validation.js";
export type { Watcher, WatchOptions } from "./registry/watcher.js";
export { RegistrationKeys } from "./registry/credentials.js";
export { MemoryStore } from "./store/memory-store.js";
export type { RegistryStore, Mutation, StoreState } from "./store/registry-store.js";
export { RegistryGrpcServer, type RegistryGrpcServerOptions } from "./server/grpc-server.js";
export { loadConfig, ConfigError } from "./config/load-config.js";
export { startServer, type RunningServer } from "./cli/serve.js";
// The client SDK: RegistryClient, registerSelf, the registry:/// resolver (SPEC 4.6).
export * from "./client/index.js";
