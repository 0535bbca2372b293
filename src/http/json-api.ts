import type { RegistryApi } from "../api/registry-api.js";
import { instanceJson, registerRequestFromJson, serviceJson } from "./json-mapping.js";
import { callContext, flag, selectorFromQuery } from "./request-context.js";
import { DEFAULT_MAX_BODY_BYTES, readJsonBody } from "./request-body.js";
import type { Route } from "./routes.js";

/**
 * The seed's HTTP/JSON API over the same request layer as gRPC (same auth,
 * same validation, same core), for services without gRPC stubs:
 *
 * | route | credentials | answer |
 * |---|---|---|
 * | `POST /service` | key | 201 `{"serviceId", "token", "instance"}` |
 * | `GET /services` | key or instance | `{"services": [...], "revision"}` |
 * | `GET /services/:type` (`?includeUnhealthy=true`, or the proto's `include_unhealthy`) | key or instance | `{"instances": [...], "revision", "panic"}` |
 * | `GET /service/:id` | key or instance | `{"instance"}` |
 * | `DELETE /service/:id` | the instance itself, or key | `{"instance", "revision"}` |
 * | `POST /service/:id/drain` | the instance itself, or key | `{"instance", "revision"}` |
 * | `PUT /service/:id/heartbeat` | the instance itself | `{"revision"}` |
 *
 * Credentials are the gRPC metadata names as headers: `authorization: Bearer
 * <key>`, or `x-service-id` and `x-service-token`.
 */
export function jsonApiRoutes(api: RegistryApi, options: { maxBodyBytes?: number } = {}): Route[] {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return [
    {
      method: "POST",
      template: "/service",
      async handle({ req, signal }) {
        const ctx = callContext(req, signal);
        const authorized = await api.authorizeRegister(ctx); // refuse before reading a stranger's body
        const request = registerRequestFromJson(await readJsonBody(req, maxBodyBytes));
        await writeTurn(api);
        const { instance, token } = await api.register(ctx, request, authorized);
        return { status: 201, json: { serviceId: instance.id, token, instance: instanceJson(instance) } };
      },
    },
    {
      method: "GET",
      template: "/services",
      async handle({ req, signal }) {
        const { services, revision } = await api.listServices(callContext(req, signal));
        return { status: 200, json: { services: services.map(serviceJson), revision } };
      },
    },
    {
      method: "GET",
      template: "/services/:type",
      async handle({ req, params, query, signal }) {
        const includeUnhealthy = flag(query, "includeUnhealthy") || flag(query, "include_unhealthy");
        const includeDraining = flag(query, "includeDraining") || flag(query, "include_draining");
        const selector = selectorFromQuery(query);
        const { instances, revision, panic } = await api.getByType(callContext(req, signal), params.type ?? "", { includeUnhealthy, includeDraining, selector });
        return { status: 200, json: { instances: instances.map(instanceJson), revision, panic } };
      },
    },
    {
      method: "GET",
      template: "/service/:id",
      async handle({ req, params, signal }) {
        return { status: 200, json: { instance: instanceJson(await api.getInstance(callContext(req, signal), params.id ?? "")) } };
      },
    },
    {
      method: "POST",
      template: "/service/:id/drain",
      async handle({ req, params, signal }) {
        await writeTurn(api);
        const { instance, revision } = await api.drain(callContext(req, signal), params.id ?? "");
        return { status: 200, json: { instance: instanceJson(instance), revision } };
      },
    },
    {
      method: "PUT",
      template: "/service/:id/heartbeat",
      async handle({ req, params, signal }) {
        return { status: 200, json: { revision: await api.heartbeat(callContext(req, signal), params.id ?? "") } };
      },
    },
    {
      method: "DELETE",
      template: "/service/:id",
      async handle({ req, params, signal }) {
        await writeTurn(api);
        const change = await api.unregister(callContext(req, signal), params.id ?? "");
        return { status: 200, json: { instance: instanceJson(change.instance), revision: change.revision } };
      },
    },
  ];
}

/** Resolves in the registry's next write turn: HTTP writes run with that turn's other writes, gRPC's included. */
function writeTurn(api: RegistryApi): Promise<void> {
  return new Promise((resolve) => api.inWriteTurn(resolve));
}
