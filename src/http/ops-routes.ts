import type { RegistryMetrics } from "../observability/registry-metrics.js";
import type { ServingState } from "../observability/serving-state.js";
import type { Route } from "./routes.js";

/**
 * `/metrics` (Prometheus text exposition) and `/healthz` (200 while SERVING,
 * 503 with the reason codes while not: the same state grpc.health.v1 reports).
 * `/healthz` names reasons only, never their details, since it needs no auth.
 */
export function opsRoutes(metrics: RegistryMetrics, serving: ServingState): Route[] {
  return [
    {
      method: "GET",
      template: "/metrics",
      async handle() {
        return { status: 200, text: await metrics.exposition(), contentType: metrics.contentType };
      },
    },
    {
      method: "GET",
      template: "/healthz",
      handle() {
        if (serving.serving) return { status: 200, json: { status: "SERVING" } };
        return {
          status: 503,
          headers: { "retry-after": "5" },
          json: { status: "NOT_SERVING", reasons: serving.reasons.map((r) => r.reason) },
        };
      },
    },
  ];
}
