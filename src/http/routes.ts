import type { IncomingMessage, ServerResponse } from "node:http";

/** What a route handler gets: the request, the path parameters and the query. */
export interface RouteRequest {
  readonly req: IncomingMessage;
  /** Decoded path parameters, e.g. `{ id }` for `/service/:id`. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /**
   * Aborted when the connection closes before the answer is sent (the client
   * went away) or when the server stops waiting for requests in flight at
   * shutdown.
   */
  readonly signal: AbortSignal;
}

/**
 * A handler's answer: JSON (`json`), text (`text`, e.g. the metrics
 * exposition), bytes (`body`, e.g. a console file, with its `contentType`),
 * or a response the route writes itself over time (`stream`: server-sent
 * events), given the response once the status and headers are out.
 */
export interface RouteResponse {
  readonly status: number;
  readonly json?: unknown;
  readonly text?: string;
  readonly body?: Buffer;
  readonly stream?: (res: ServerResponse) => void;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One HTTP route. `template` (e.g. `/service/:id`) is also its metrics label. */
export interface Route {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  readonly template: string;
  handle(request: RouteRequest): Promise<RouteResponse> | RouteResponse;
}

/** A route matched, or only its path (`allow` lists the methods that would match). */
export type RouteMatch =
  | { readonly kind: "route"; readonly route: Route; readonly params: Record<string, string> }
  | { readonly kind: "method"; readonly route: Route; readonly allow: string[] };

/** Finds the route for `method` and `path`; undefined when no template matches the path. */
export function matchRoute(routes: readonly Route[], method: string, path: string): RouteMatch | undefined {
  const segments = path.split("/").slice(1);
  let pathOnly: RouteMatch | undefined;
  const allow: string[] = [];
  for (const route of routes) {
    const params = matchTemplate(route.template, segments);
    if (!params) continue;
    if (route.method === method) return { kind: "route", route, params };
    allow.push(route.method);
    pathOnly ??= { kind: "method", route, allow };
  }
  return pathOnly;
}

function matchTemplate(template: string, segments: string[]): Record<string, string> | undefined {
  const parts = template.split("/").slice(1);
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const segment = segments[i] as string;
    if (part.startsWith(":")) {
      if (segment === "") return undefined;
      try {
        params[part.slice(1)] = decodeURIComponent(segment);
      } catch {
        return undefined;
      }
    } else if (part !== segment) return undefined;
  }
  return params;
}
