import type { RegistryApi } from "../api/registry-api.js";
import type { HealthSeries } from "../console/health-series.js";
import type { LastProbes } from "../console/last-probes.js";
import { instanceJson } from "./json-mapping.js";
import { callContext, selectorFromQuery } from "./request-context.js";
import type { Route } from "./routes.js";

/**
 * What the web console reads beside the JSON API, with the same credentials:
 *
 * | route | answer |
 * |---|---|
 * | `GET /console/services/:type` (`?selector=`) | every instance of the type, draining and unhealthy ones too, each with its latest failure reason and probe: `{"instances", "revision", "panic"}` |
 * | `GET /console/series` | healthy instances per type and the prober's lag, over the last hour: `{"intervalMs", "samples": [{"at", "healthy", "probeLagP99Ms"}]}` |
 */
export function consoleDataRoutes(api: RegistryApi, probes: LastProbes, series: HealthSeries): Route[] {
  return [
    {
      method: "GET",
      template: "/console/services/:type",
      async handle({ req, params, query, signal }) {
        const answer = await api.getByType(callContext(req, signal), params.type ?? "", {
          includeUnhealthy: true,
          includeDraining: true,
          selector: selectorFromQuery(query),
        });
        const instances = answer.instances.map((instance) => {
          const probe = probes.probeOf(instance.id);
          const failure = probes.failureOf(instance.id);
          return {
            ...instanceJson(instance),
            ...(failure ? { failureReason: failure.reason, failedAt: new Date(failure.at).toISOString() } : {}),
            ...(probe ? { lastProbe: { at: new Date(probe.at).toISOString(), ms: probe.ms, ok: probe.ok } } : {}),
          };
        });
        return { status: 200, json: { instances, revision: answer.revision, panic: answer.panic } };
      },
    },
    {
      method: "GET",
      template: "/console/series",
      async handle({ req, signal }) {
        const ctx = callContext(req, signal);
        await api.auth.identify(ctx.credentials, ctx);
        const samples = series.list().map((s) => ({ at: new Date(s.at).toISOString(), healthy: s.healthy, probeLagP99Ms: s.probeLagP99Ms }));
        return { status: 200, json: { intervalMs: series.intervalMs, samples } };
      },
    },
  ];
}
