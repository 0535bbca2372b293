import type { KeySource } from "../config/registration-key.js";

/** What the server's start-up line reports. */
export interface ServingFacts {
  readonly host: string;
  readonly port: number;
  /** PORT serves HTTP/1.1 beside gRPC. */
  readonly portServesHttp: boolean;
  /** The separate HTTP port, if any. */
  readonly httpPort: number | undefined;
  readonly tls: "plaintext" | "tls" | "mtls";
  readonly store: "sqlite" | "etcd" | "memory";
  /** The data directory, as a path a reader can find (absolute). */
  readonly dataDir: string;
  readonly etcdEndpoints: string;
  readonly etcdPrefix: string;
  readonly keyCount: number;
  readonly keySource: KeySource;
}

/** The message's first words, the same on every start: what a reader waiting for the server looks for. */
export const SERVING_PREFIX = "serving gRPC";

const TRANSPORT = { plaintext: "plaintext", tls: "TLS", mtls: "TLS, client certificates required" } as const;

/**
 * The start-up line's message: where the server listens and how, where its
 * state lives, and where its registration key came from (never the key). It
 * is the first line a person starting the server sees, on a terminal too.
 *
 * @example
 * // "serving gRPC and HTTP on 0.0.0.0:4000 (plaintext); HTTP also on 0.0.0.0:4001;
 * //  store sqlite in /srv/registry/data; key from SERVICE_REGISTRATION_KEY in /srv/registry/.env"
 */
export function servingSummary(f: ServingFacts): string {
  const parts = [`serving ${f.portServesHttp ? "gRPC and HTTP" : "gRPC"} on ${hostPort(f.host, f.port)} (${TRANSPORT[f.tls]})`];
  if (f.httpPort !== undefined) parts.push(`HTTP also on ${hostPort(f.host, f.httpPort)}`);
  parts.push(storeText(f));
  parts.push(`${f.keyCount > 1 ? `${f.keyCount} keys` : "key"} ${f.keySource.description}`);
  return parts.join("; ");
}

function storeText(f: ServingFacts): string {
  switch (f.store) {
    case "sqlite":
      return `store sqlite in ${f.dataDir}`;
    case "memory":
      return "store memory (lost on restart)";
    case "etcd":
      // A URL's user:password, if one were ever put there, stays out of the log.
      return `store etcd at ${f.etcdEndpoints.replace(/\/\/[^/@]*@/g, "//")} (prefix ${f.etcdPrefix})`;
  }
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
