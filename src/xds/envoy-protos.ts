import { accessSync, constants as fsConstants } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join } from "node:path";
import type { ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";

/** Type URLs of the xDS resources a proxyless gRPC client asks for (gRFC A27). */
export const TYPE_URL = {
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoints: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
} as const;

export const HTTP_CONNECTION_MANAGER_URL =
  "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
export const ROUTER_URL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/** The protos the control plane reads and writes (their imports come along). */
const FILES = [
  "envoy/service/discovery/v3/ads.proto",
  "envoy/config/listener/v3/listener.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/config/route/v3/route.proto",
  "envoy/config/cluster/v3/cluster.proto",
  "envoy/config/endpoint/v3/endpoint.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
];

/** The message types used, from one protobufjs root. */
export interface EnvoyTypes {
  readonly DiscoveryRequest: protobuf.Type;
  readonly DiscoveryResponse: protobuf.Type;
  /** By type URL: the resource types and the two nested in a Listener. */
  readonly byUrl: ReadonlyMap<string, protobuf.Type>;
}

let loaded: EnvoyTypes | undefined;

/**
 * Envoy's API protos, as @grpc/grpc-js-xds ships them (envoy-api, xds,
 * googleapis and protoc-gen-validate side by side), loaded on first use:
 * about a few hundred files, which a registry that never serves an xDS
 * stream should not pay for at start-up. protobufjs (the engine under
 * proto-loader) is used directly because the resources travel inside
 * `google.protobuf.Any` and must be encoded as messages of their own.
 */
export function envoyTypes(): EnvoyTypes {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const deps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
  const includeDirs = ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(deps, d));
  // Envoy's annotations import descriptor.proto, which protobufjs keeps as a bundled JSON file.
  protobuf.common("descriptor", (require("protobufjs/google/protobuf/descriptor.json") as DescriptorJson).nested.google.nested.protobuf.nested);
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : (includeDirs.map((d) => join(d, target)).find(readable) ?? target));
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  const type = (name: string): protobuf.Type => root.lookupType(name);
  const byUrl = new Map<string, protobuf.Type>();
  for (const url of [...Object.values(TYPE_URL), HTTP_CONNECTION_MANAGER_URL, ROUTER_URL]) byUrl.set(url, type(url.slice(url.indexOf("/") + 1)));
  loaded = {
    DiscoveryRequest: type("envoy.service.discovery.v3.DiscoveryRequest"),
    DiscoveryResponse: type("envoy.service.discovery.v3.DiscoveryResponse"),
    byUrl,
  };
  return loaded;
}

interface DescriptorJson {
  readonly nested: { readonly google: { readonly nested: { readonly protobuf: { readonly nested: Record<string, unknown> } } } };
}

function readable(path: string): boolean {
  try {
    accessSync(path, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** A DiscoveryRequest as the control plane reads it (plain fields, snake_case as in the proto). */
export interface DiscoveryRequest {
  readonly version_info: string;
  readonly node?: { readonly id?: string; readonly cluster?: string; readonly metadata?: StructValue; readonly user_agent_name?: string };
  readonly resource_names: readonly string[];
  readonly type_url: string;
  readonly response_nonce: string;
  readonly error_detail?: { readonly code?: number; readonly message?: string };
}

/** A google.protobuf.Struct as protobufjs decodes it (its bundled well-known types keep camelCase names). */
export interface StructValue {
  readonly fields?: Record<string, { readonly stringValue?: string }>;
}

/** A DiscoveryResponse as the control plane writes it. */
export interface DiscoveryResponse {
  readonly version_info: string;
  readonly resources: readonly { readonly type_url: string; readonly value: Uint8Array }[];
  readonly type_url: string;
  readonly nonce: string;
}

/**
 * The Aggregated Discovery Service (state of the world), as a grpc-js
 * service definition: the messages are (de)serialized with the lazily
 * loaded types, so binding the service costs nothing until a client calls.
 */
export const ADS_SERVICE: ServiceDefinition = {
  streamAggregatedResources: {
    path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
    requestStream: true,
    responseStream: true,
    requestSerialize: (request: DiscoveryRequest) => Buffer.from(envoyTypes().DiscoveryRequest.encode(request).finish()),
    requestDeserialize: (bytes: Buffer): DiscoveryRequest => {
      const { DiscoveryRequest } = envoyTypes();
      return DiscoveryRequest.toObject(DiscoveryRequest.decode(bytes), { defaults: true, arrays: true }) as DiscoveryRequest;
    },
    responseSerialize: (response: DiscoveryResponse | Buffer) =>
      Buffer.isBuffer(response) ? response : Buffer.from(envoyTypes().DiscoveryResponse.encode(response).finish()),
    responseDeserialize: (bytes: Buffer): DiscoveryResponse => {
      const { DiscoveryResponse } = envoyTypes();
      return DiscoveryResponse.toObject(DiscoveryResponse.decode(bytes), { defaults: true, arrays: true }) as DiscoveryResponse;
    },
    originalName: "streamAggregatedResources",
  },
};
