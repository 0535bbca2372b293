import { describe, expect, it } from "vitest";
import { SERVING_PREFIX, servingSummary, type ServingFacts } from "../../src/logging/serving-summary.js";

const facts: ServingFacts = {
  host: "0.0.0.0",
  port: 4000,
  portServesHttp: true,
  httpPort: 4001,
  tls: "plaintext",
  store: "sqlite",
  dataDir: "/srv/registry/data",
  etcdEndpoints: "http://127.0.0.1:2379",
  etcdPrefix: "/service-registry/",
  keyCount: 1,
  keySource: { from: "dotenv", path: "/srv/registry/.env", description: "from SERVICE_REGISTRATION_KEY in /srv/registry/.env" },
};

describe("the start-up line's message", () => {
  it("says where it listens, the store and its directory, and where the key came from", () => {
    expect(servingSummary(facts)).toBe(
      "serving gRPC and HTTP on 0.0.0.0:4000 (plaintext); HTTP also on 0.0.0.0:4001; store sqlite in /srv/registry/data; key from SERVICE_REGISTRATION_KEY in /srv/registry/.env",
    );
  });

  it.each<[string, Partial<ServingFacts>, string]>([
    ["gRPC only, over TLS, no separate HTTP port", { portServesHttp: false, httpPort: undefined, tls: "tls" }, "serving gRPC on 0.0.0.0:4000 (TLS); store sqlite"],
    ["mTLS on IPv6", { host: "::", tls: "mtls" }, "serving gRPC and HTTP on [::]:4000 (TLS, client certificates required); HTTP also on [::]:4001;"],
    ["the memory store", { store: "memory" }, "; store memory (lost on restart); "],
    ["etcd, a URL's password left out", { store: "etcd", etcdEndpoints: "https://u:pw@etcd-1:2379,https://etcd-2:2379" }, "; store etcd at https://etcd-1:2379,https://etcd-2:2379 (prefix /service-registry/); "],
    ["several keys", { keyCount: 2 }, "; 2 keys from SERVICE_REGISTRATION_KEY in /srv/registry/.env"],
  ])("%s", (_name, change, expected) => {
    const summary = servingSummary({ ...facts, ...change });
    expect(summary).toContain(expected);
    expect(summary.startsWith(SERVING_PREFIX)).toBe(true);
    expect(summary).not.toContain("pw@");
  });
});
