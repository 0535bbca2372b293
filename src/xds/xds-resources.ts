import { isIP } from "node:net";
import type { Instance } from "../registry/types.js";
import { envoyTypes, HTTP_CONNECTION_MANAGER_URL, ROUTER_URL, TYPE_URL } from "./envoy-protos.js";

/** One xDS resource, encoded once and shared by every stream that sends it. */
export interface EncodedResource {
  readonly type_url: string;
  readonly value: Uint8Array;
}

function encode(typeUrl: string, message: Record<string, unknown>): EncodedResource {
  const type = envoyTypes().byUrl.get(typeUrl);
  if (!type) throw new Error(`no proto type for ${typeUrl}`);
  return { type_url: typeUrl, value: type.encode(type.fromObject(message)).finish() };
}

/**
 * The Listener a client dialling `xds:///<serviceType>` looks up: an API
 * listener whose HTTP connection manager carries its route configuration
 * inline (no RDS round trip) with the router filter gRPC requires, every
 * call routed to the Cluster of the same name.
 */
export function listenerFor(serviceType: string): EncodedResource {
  const manager = encode(HTTP_CONNECTION_MANAGER_URL, {
    route_config: {
      name: serviceType,
      // The listener is the type's own, so its one virtual host takes any authority the client dials it by.
      virtual_hosts: [{ name: serviceType, domains: ["*"], routes: [{ match: { prefix: "" }, route: { cluster: serviceType } }] }],
    },
    http_filters: [{ name: "envoy.filters.http.router", typed_config: encode(ROUTER_URL, {}) }],
  });
  return encode(TYPE_URL.listener, { name: serviceType, api_listener: { api_listener: manager } });
}

/** The Cluster of a service type: endpoints from EDS over this same ADS stream, round-robin. */
export function clusterFor(serviceType: string): EncodedResource {
  return encode(TYPE_URL.cluster, {
    name: serviceType,
    type: "EDS",
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" }, service_name: serviceType },
    lb_policy: "ROUND_ROBIN",
  });
}

/**
 * The ClusterLoadAssignment of a service type: every instance as an endpoint,
 * with an IP address, in one locality (gRPC drops a locality without a weight). Health follows
 * the registry: HEALTHY, UNHEALTHY, or DRAINING for a draining instance.
 * While the type is in panic its unhealthy instances are sent as UNKNOWN,
 * which gRPC clients pick like HEALTHY: the same "route to every instance"
 * answer GetByType gives then.
 */
export function assignmentFor(serviceType: string, instances: readonly Instance[], panic: boolean): EncodedResource {
  // gRPC clients take endpoint addresses as IP literals and do not resolve names; C-core
  // rejects a whole assignment with a name in it. Instances registered by hostname are left out.
  const lbEndpoints = instances.filter((instance) => isIP(instance.host) !== 0).map((instance) => ({
    endpoint: { address: { socket_address: { address: instance.host, port_value: instance.port } } },
    health_status: endpointHealth(instance, panic),
    load_balancing_weight: { value: 1 },
  }));
  return encode(TYPE_URL.endpoints, {
    cluster_name: serviceType,
    endpoints: lbEndpoints.length === 0 ? [] : [{ locality: {}, lb_endpoints: lbEndpoints, load_balancing_weight: { value: 1 }, priority: 0 }],
  });
}

function endpointHealth(instance: Instance, panic: boolean): string {
  if (instance.draining) return "DRAINING";
  if (instance.health === "healthy") return "HEALTHY";
  return panic ? "UNKNOWN" : "UNHEALTHY";
}
