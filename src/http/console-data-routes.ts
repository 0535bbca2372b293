import type { RegistryApi } from "../api/registry-api.js";
import type { HealthSeries } from "../console/health-series.js";
import type { LastProbes } from "../console/last-probes.js";
import { isServiceTypeName } from "../registry/validation.js";
import { HttpError } from "./http-errors.js";
import { instanceJson } from "./json-mapping.js";
import { callContext, selectorFromQuery } from "./request-context.js";
import type { Route } from "./routes.js";

/**
 * What the web console reads beside the JSON API, with the same credentials:
 *
 * | route | answer |
 * |---|---|
 * | `GET /console/services/:type` (`?selector=`) | every instance of the type, draining and unhealthy ones too, each with its latest failure reason and probe: `{"instances", "revision", "panic"}` |
 * | `GET /console/series` (`?types=a,b`, at most 20; default the largest few) | healthy instances of those types and the prober's lag, over the last hour: `{"intervalMs", "samples": [{"at", "healthy", "probeLagP99Ms"}]}` |
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
      async handle({ req, query, signal }) {
        const ctx = callContext(req, signal);
        await api.auth.identify(ctx.credentials, ctx);
        const all = series.list();
        const types = typesOf(query.get("types")) ?? largest(all.at(-1)?.healthy ?? {}, CHARTED_BY_DEFAULT);
        const samples = all.map((s) => {
          const healthy: Record<string, number> = {};
          for (const type of types) if (Object.hasOwn(s.healthy, type)) healthy[type] = s.healthy[type] as number;
          return { at: new Date(s.at).toISOString(), healthy, probeLagP99Ms: s.probeLagP99Ms };
        });
        return { status: 200, json: { intervalMs: series.intervalMs, samples } };
      },
    },
  ];
}

/** Types charted when the page names none: the largest, as the services page draws them. */
const CHARTED_BY_DEFAULT = 6;
/** Types one request may name: a chart draws a few lines; the whole hour of every type would be megabytes. */
const MAX_TYPES = 20;

function typesOf(raw: string | null): string[] | undefined {
  if (raw === null || raw === "") return undefined;
  const types = [...new Set(raw.split(","))];
  if (types.length > MAX_TYPES) throw new HttpError(400, "INVALID_ARGUMENT", `types: at most ${MAX_TYPES}`);
  // A misspelt name would chart an empty line and look like a type with no healthy instance.
  const bad = types.find((t) => !isServiceTypeName(t));
  if (bad !== undefined) throw new HttpError(400, "INVALID_ARGUMENT", `types: ${JSON.stringify(bad.slice(0, 70))} is not a service type name`);
  return types;
}

function largest(healthy: Readonly<Record<string, number>>, n: number): string[] {
  return Object.keys(healthy)
    .sort((a, b) => (healthy[b] as number) - (healthy[a] as number) || a.localeCompare(b))
    .slice(0, n);
}
