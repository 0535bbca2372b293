import type { IncomingMessage } from "node:http";
import { bearerKey } from "../api/authenticator.js";
import { peerHost } from "../api/peer-address.js";
import type { CallContext, RegistryApi } from "../api/registry-api.js";
import { HttpError } from "./http-errors.js";
import { instanceJson, registerRequestFromJson, serviceJson } from "./json-mapping.js";
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
        const ctx = context(req, signal);
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
        const { services, revision } = await api.listServices(context(req, signal));
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
        const { instances, revision, panic } = await api.getByType(context(req, signal), params.type ?? "", { includeUnhealthy, includeDraining, selector });
        return { status: 200, json: { instances: instances.map(instanceJson), revision, panic } };
      },
    },
    {
      method: "GET",
      template: "/service/:id",
      async handle({ req, params, signal }) {
        return { status: 200, json: { instance: instanceJson(await api.getInstance(context(req, signal), params.id ?? "")) } };
      },
    },
    {
      method: "POST",
      template: "/service/:id/drain",
      async handle({ req, params, signal }) {
        await writeTurn(api);
        const { instance, revision } = await api.drain(context(req, signal), params.id ?? "");
        return { status: 200, json: { instance: instanceJson(instance), revision } };
      },
    },
    {
      method: "PUT",
      template: "/service/:id/heartbeat",
      async handle({ req, params, signal }) {
        return { status: 200, json: { revision: await api.heartbeat(context(req, signal), params.id ?? "") } };
      },
    },
    {
      method: "DELETE",
      template: "/service/:id",
      async handle({ req, params, signal }) {
        await writeTurn(api);
        const change = await api.unregister(context(req, signal), params.id ?? "");
        return { status: 200, json: { instance: instanceJson(change.instance), revision: change.revision } };
      },
    },
  ];
}

/** Resolves in the registry's next write turn: HTTP writes run with that turn's other writes, gRPC's included. */
function writeTurn(api: RegistryApi): Promise<void> {
  return new Promise((resolve) => api.inWriteTurn(resolve));
}

/** Credentials from headers, the caller's address and the request's abort signal, as the gRPC layer reads them from its call. */
function context(req: IncomingMessage, signal: AbortSignal): CallContext {
  return {
    signal,
    credentials: {
      key: bearerKey(header(req, "authorization")),
      serviceId: header(req, "x-service-id"),
      serviceToken: header(req, "x-service-token"),
    },
    peerHost: req.socket.remoteAddress === undefined ? undefined : peerHost(req.socket.remoteAddress),
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * `?selector=zone=eu-1,tier=web` (Kubernetes' label selector syntax,
 * equality only) as a record; the API checks keys and values. A key given
 * twice is refused: one key cannot equal two values.
 */
function selectorFromQuery(query: URLSearchParams): Record<string, string> | undefined {
  const raw = query.get("selector");
  if (raw === null || raw === "") return undefined;
  const selector: Record<string, string> = {};
  for (const term of raw.split(",")) {
    const eq = term.indexOf("=");
    if (eq <= 0) throw new HttpError(400, "INVALID_ARGUMENT", `selector: ${JSON.stringify(term.slice(0, 80))} is not key=value`);
    const key = term.slice(0, eq);
    // Checked before defining: redefining the (non-writable) entry would throw a TypeError, a 500.
    if (Object.hasOwn(selector, key)) throw new HttpError(400, "INVALID_ARGUMENT", `selector: key ${JSON.stringify(key.slice(0, 80))} is given twice`);
    Object.defineProperty(selector, key, { value: term.slice(eq + 1).replace(/^=/, ""), enumerable: true });
  }
  return selector;
}

function flag(query: URLSearchParams, name: string): boolean {
  const raw = query.get(name);
  if (raw === null || raw === "" || raw === "false" || raw === "0") return false;
  if (raw === "true" || raw === "1") return true;
  throw new HttpError(400, "INVALID_ARGUMENT", `${name}: must be true or false`);
}
