import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ClientDuplexStream } from "@grpc/grpc-js";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { ADS_SERVICE, envoyTypes, TYPE_URL, type DiscoveryRequest, type DiscoveryResponse } from "../../src/xds/envoy-protos.js";
import { parseExposition } from "../support/prometheus-text.js";
import { call, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { makeTestPki } from "../support/test-pki.js";
import { StreamCursor } from "../support/stream-cursor.js";

type AdsClient = Client & { streamAggregatedResources(metadata?: Metadata): ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> };
const AdsClientCtor = makeGenericClientConstructor(ADS_SERVICE, "AggregatedDiscoveryService") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => AdsClient;

/** A response with its resources decoded (plain objects, enums as names). */
interface Decoded {
  readonly version: string;
  readonly nonce: string;
  readonly typeUrl: string;
  readonly resources: Record<string, unknown>[];
}

function decode(response: DiscoveryResponse): Decoded {
  return {
    version: response.version_info,
    nonce: response.nonce,
    typeUrl: response.type_url,
    resources: response.resources.map((any) => {
      const type = envoyTypes().byUrl.get(any.type_url);
      if (!type) throw new Error(`unexpected resource type ${any.type_url}`);
      return type.toObject(type.decode(any.value), { enums: String, defaults: false }) as Record<string, unknown>;
    }),
  };
}

/** A hand-driven ADS stream: requests in, decoded responses out. */
class AdsStream extends StreamCursor<DiscoveryResponse, Decoded> {
  constructor(
    readonly call: ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>,
    private readonly nodeMetadata: Record<string, string>,
  ) {
    super(call, "ADS stream", decode);
  }
  private first = true;

  send(typeUrl: string, names: string[], ack?: { version: string; nonce: string }, error?: string): void {
    const request: Record<string, unknown> = {
      type_url: typeUrl,
      resource_names: names,
      version_info: ack?.version ?? "",
      response_nonce: ack?.nonce ?? "",
      ...(error ? { error_detail: { code: 3, message: error } } : {}),
    };
    if (this.first) {
      request.node = { id: "protocol-test", metadata: { fields: Object.fromEntries(Object.entries(this.nodeMetadata).map(([k, v]) => [k, { stringValue: v }])) } };
      this.first = false;
    }
    this.call.write(request as unknown as DiscoveryRequest);
  }

  /** The next response, checked to be of `typeUrl`. */
  async expectNext(typeUrl: string): Promise<Decoded> {
    const response = await this.next();
    expect(response.typeUrl).toBe(typeUrl);
    return response;
  }
}

const names = (r: Decoded): string[] => r.resources.map((x) => (x.name ?? x.cluster_name) as string).sort();

describe("xDS protocol: a hand-driven ADS stream (state of the world)", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(env: Record<string, string> = {}, tlsCredentials?: ReturnType<typeof credentials.createSsl>) {
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const stack = await startStack(env, {}, logger);
    cleanup.push(() => stack.close());
    const creds = tlsCredentials ?? credentials.createInsecure();
    const registry = new RegistryServiceClient(stack.address, creds);
    const ads = new AdsClientCtor(stack.address, creds);
    cleanup.push(() => registry.close(), () => ads.close());
    const open = (nodeMetadata: Record<string, string> = { registry_key: TEST_KEY }, metadata = new Metadata()): AdsStream => {
      const stream = new AdsStream(ads.streamAggregatedResources(metadata), nodeMetadata);
      cleanup.push(() => stream.cancel());
      return stream;
    };
    /** Registers; `revision` is the registry's revision right after (no other writes run meanwhile). */
    const register = async (serviceType: string, port: number) => {
      const answer = await call(registry, registry.register, { serviceType, host: "127.0.0.1", port, metadata: {} });
      return { ...answer, revision: stack.registry.revision };
    };
    return { stack, registry, open, register, lines };
  }

  it("versions are registry revisions, every response has its own nonce, and an ACK changes nothing", async () => {
    const { open, register } = await setup();
    const first = await register("billing", 9001);
    const ads = open();
    ads.send(TYPE_URL.listener, ["billing"]);
    const lds = await ads.expectNext(TYPE_URL.listener);
    expect(lds.version).toBe(String(first.revision));
    expect(names(lds)).toEqual(["billing"]);
    expect(lds.resources[0]).toMatchObject({ name: "billing", api_listener: { api_listener: { type_url: expect.stringContaining("HttpConnectionManager") } } });
    ads.send(TYPE_URL.listener, ["billing"], lds); // ACK

    ads.send(TYPE_URL.cluster, ["billing"]);
    const cds = await ads.expectNext(TYPE_URL.cluster);
    expect(cds.resources[0]).toMatchObject({ name: "billing", type: "EDS", lb_policy: "ROUND_ROBIN", eds_cluster_config: { service_name: "billing" } });
    ads.send(TYPE_URL.cluster, ["billing"], cds);

    ads.send(TYPE_URL.endpoints, ["billing"]);
    const eds = await ads.expectNext(TYPE_URL.endpoints);
    expect(eds.resources[0]).toMatchObject({
      cluster_name: "billing",
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: 9001 } } }, health_status: "HEALTHY" }] }],
    });
    ads.send(TYPE_URL.endpoints, ["billing"], eds);
    expect(new Set([lds.nonce, cds.nonce, eds.nonce]).size).toBe(3);

    // Another type changes: nothing for this stream. Then billing changes: only its
    // assignment is sent, at the Register's revision (the ACKs above sent nothing either).
    await register("payments", 9100);
    const second = await register("billing", 9002);
    const update = await ads.expectNext(TYPE_URL.endpoints);
    expect(update.version).toBe(String(second.revision));
    expect(update.nonce).not.toBe(eds.nonce);
    const ports = (update.resources[0] as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] }).endpoints[0]!.lb_endpoints.map(
      (e) => e.endpoint.address.socket_address.port_value,
    );
    expect(ports.sort()).toEqual([9001, 9002]);
  });

  /** billing and payments registered, and a stream subscribed to billing's endpoints: that first response. */
  async function subscribedToBilling() {
    const { stack, open, register, lines } = await setup();
    await register("billing", 9001);
    await register("payments", 9101);
    const ads = open();
    ads.send(TYPE_URL.endpoints, ["billing"]);
    return { stack, register, lines, ads, first: await ads.expectNext(TYPE_URL.endpoints) };
  }

  it("a NACK is logged and counted and resends nothing; a stale nonce is ignored; resource_names changes are followed", async () => {
    const { stack, register, lines, ads, first } = await subscribedToBilling();
    expect(names(first)).toEqual(["billing"]);

    // NACK: the client keeps the version it had; the server resends nothing until something changes.
    ads.send(TYPE_URL.endpoints, ["billing"], { version: "", nonce: first.nonce }, "endpoint rejected for a test");
    const subscribe = await (async () => {
      ads.send(TYPE_URL.endpoints, ["billing", "payments"], { version: "", nonce: first.nonce });
      return ads.expectNext(TYPE_URL.endpoints);
    })();
    expect(names(subscribe)).toEqual(["billing", "payments"]); // the first thing after the NACK is the new subscription's answer
    const metrics = parseExposition(await stack.metrics.exposition());
    expect(metrics.value("registry_xds_nacks_total", { type: "ClusterLoadAssignment" })).toBe(1);
    const nack = lines.map((l) => JSON.parse(l) as { msg: string; error?: string; node?: string }).find((l) => l.msg.includes("NACK"));
    expect(nack).toMatchObject({ error: "endpoint rejected for a test", node: "protocol-test" });

    // A request carrying an older nonce is stale: its names are not taken (else "billing" alone would come next).
    ads.send(TYPE_URL.endpoints, ["billing"], { version: first.version, nonce: first.nonce });
    // Dropping a name with the current nonce is followed.
    ads.send(TYPE_URL.endpoints, ["payments"], { version: subscribe.version, nonce: subscribe.nonce });
    const narrowed = await ads.expectNext(TYPE_URL.endpoints);
    expect(names(narrowed)).toEqual(["payments"]);
    ads.send(TYPE_URL.endpoints, ["payments"], narrowed);
    // billing is no longer subscribed: its change sends nothing; payments' does.
    await register("billing", 9002);
    await register("payments", 9102);
    expect(names(await ads.expectNext(TYPE_URL.endpoints))).toEqual(["payments"]);
  });

  it("a NACK storm is counted in full but logged once a minute per type, with how many (a client cannot flood the log)", async () => {
    const { stack, lines, ads, first } = await subscribedToBilling();
    let last = first;
    // Each NACK also changes the names, so every one draws a new response to NACK.
    for (let i = 0; i < 20; i++) {
      ads.send(TYPE_URL.endpoints, i % 2 === 0 ? ["billing", "payments"] : ["billing"], { version: "", nonce: last.nonce }, `storm ${i}`);
      last = await ads.expectNext(TYPE_URL.endpoints);
    }
    const metrics = parseExposition(await stack.metrics.exposition());
    expect(metrics.value("registry_xds_nacks_total", { type: "ClusterLoadAssignment" })).toBe(20);
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; error?: string; count?: number }).filter((l) => l.msg.includes("NACK"));
    expect(logged).toEqual([expect.objectContaining({ error: "storm 0", count: 1 })]);
  });

  it("an unknown type gets no resource, and its Listener is pushed when the type appears", async () => {
    const { open, register } = await setup();
    const ads = open();
    ads.send(TYPE_URL.listener, ["ghost"]);
    const none = await ads.expectNext(TYPE_URL.listener);
    expect(none.resources).toEqual([]);
    ads.send(TYPE_URL.listener, ["ghost"], none);
    ads.send(TYPE_URL.endpoints, ["ghost"]);
    expect((await ads.expectNext(TYPE_URL.endpoints)).resources).toEqual([]);
    const reg = await register("ghost", 9200);
    // Listener first (a client needs it before it asks for the rest), then the assignment.
    const listener = await ads.expectNext(TYPE_URL.listener);
    expect(names(listener)).toEqual(["ghost"]);
    expect(listener.version).toBe(String(reg.revision));
    expect(names(await ads.expectNext(TYPE_URL.endpoints))).toEqual(["ghost"]);
  });

  it("an empty first LDS or CDS request subscribes to every type (wildcard)", async () => {
    const { open, register } = await setup();
    await register("a-type", 9301);
    await register("b-type", 9302);
    const ads = open();
    ads.send(TYPE_URL.cluster, []);
    expect(names(await ads.expectNext(TYPE_URL.cluster))).toEqual(["a-type", "b-type"]);
  });

  it("sends draining instances as DRAINING and unhealthy ones as UNHEALTHY", async () => {
    const { registry, open, register } = await setup();
    const a = await register("billing", 9401);
    await register("billing", 9402);
    await call(registry, registry.drain, { instanceId: a.serviceId });
    const ads = open();
    ads.send(TYPE_URL.endpoints, ["billing"]);
    const eds = await ads.expectNext(TYPE_URL.endpoints);
    const endpoints = (eds.resources[0] as { endpoints: { lb_endpoints: { health_status: string; endpoint: { address: { socket_address: { port_value: number } } } }[] }[] })
      .endpoints[0]!.lb_endpoints;
    expect(endpoints.map((e) => [e.endpoint.address.socket_address.port_value, e.health_status]).sort()).toEqual([
      [9401, "DRAINING"],
      [9402, "HEALTHY"],
    ]);
  });

  it("authenticates by node metadata (key or instance credentials) or call metadata; refuses none and wrong ones with UNAUTHENTICATED; never logs them", async () => {
    const { open, register, lines } = await setup();
    const instance = await register("billing", 9501);
    const refused = async (nodeMetadata: Record<string, string>) => {
      const ads = open(nodeMetadata);
      ads.send(TYPE_URL.listener, ["billing"]);
      return ads.status();
    };
    const missing = await refused({});
    expect(missing.code).toBe(status.UNAUTHENTICATED);
    expect(missing.details).toMatch(/registry_key/);
    expect((await refused({ registry_key: "wrong-registration-key-000000000" })).code).toBe(status.UNAUTHENTICATED);
    expect((await refused({ registry_service_id: instance.serviceId, registry_service_token: "nope" })).code).toBe(status.UNAUTHENTICATED);

    const byInstance = open({ registry_service_id: instance.serviceId, registry_service_token: instance.token });
    byInstance.send(TYPE_URL.listener, ["billing"]);
    expect(names(await byInstance.expectNext(TYPE_URL.listener))).toEqual(["billing"]);
    const callMetadata = new Metadata();
    callMetadata.set("authorization", `Bearer ${TEST_KEY}`);
    const byCall = open({}, callMetadata);
    byCall.send(TYPE_URL.listener, ["billing"]);
    expect(names(await byCall.expectNext(TYPE_URL.listener))).toEqual(["billing"]);
    expect(lines.join("\n")).not.toContain(TEST_KEY);
    expect(lines.join("\n")).not.toContain(instance.token);
  });

  it("ends a stream opened with an instance's credentials when that instance is removed", async () => {
    const { registry, open, register } = await setup();
    const instance = await register("billing", 9601);
    const ads = open({ registry_service_id: instance.serviceId, registry_service_token: instance.token });
    ads.send(TYPE_URL.listener, ["billing"]);
    await ads.expectNext(TYPE_URL.listener);
    await call(registry, registry.unregister, { instanceId: instance.serviceId });
    expect((await ads.status()).code).toBe(status.UNAUTHENTICATED);
  });

  it("holds one instance's credentials to MAX_XDS_STREAMS_PER_INSTANCE; the key is not held to it", async () => {
    const { open, register } = await setup({ MAX_XDS_STREAMS_PER_INSTANCE: "1" });
    const instance = await register("billing", 9651);
    const asInstance = { registry_service_id: instance.serviceId, registry_service_token: instance.token };
    const first = open(asInstance);
    first.send(TYPE_URL.listener, ["billing"]);
    await first.expectNext(TYPE_URL.listener);
    const second = open(asInstance);
    second.send(TYPE_URL.listener, ["billing"]);
    const refused = await second.status();
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toBe("MAX_XDS_STREAMS_PER_INSTANCE reached (1 open with this instance's credentials)");
    for (let i = 0; i < 2; i++) {
      const byKey = open();
      byKey.send(TYPE_URL.listener, ["billing"]);
      await byKey.expectNext(TYPE_URL.listener);
    }
  });

  it("serves streams with no credentials only when XDS_ALLOW_UNAUTHENTICATED is set", async () => {
    const { open, register } = await setup({ XDS_ALLOW_UNAUTHENTICATED: "true" });
    await register("billing", 9701);
    const ads = open({});
    ads.send(TYPE_URL.listener, ["billing"]);
    expect(names(await ads.expectNext(TYPE_URL.listener))).toEqual(["billing"]);
  });

  it("under mTLS (TLS_CLIENT_CA_FILE), takes the verified client certificate as the stream's credential", async () => {
    const pki = await makeTestPki();
    const tls = credentials.createSsl(Buffer.from(pki.ca.cert), Buffer.from(pki.client.key), Buffer.from(pki.client.cert));
    const { stack, register } = await setup({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, TLS_CLIENT_CA_FILE: pki.ca.certFile }, tls);
    await register("billing", 9751);
    const ads = new AdsClientCtor(stack.address, tls);
    cleanup.push(() => ads.close());
    const stream = new AdsStream(ads.streamAggregatedResources(new Metadata()), {});
    cleanup.push(() => stream.cancel());
    stream.send(TYPE_URL.listener, ["billing"]);
    expect(names(await stream.expectNext(TYPE_URL.listener))).toEqual(["billing"]);
  });

  it("leaves instances registered by hostname out of the assignment (gRPC clients take IP addresses only; C-core refuses the whole assignment otherwise)", async () => {
    const { registry, open, register } = await setup();
    await register("billing", 9851);
    await call(registry, registry.register, { serviceType: "billing", host: "localhost", port: 9852, metadata: {} });
    const ads = open();
    ads.send(TYPE_URL.endpoints, ["billing"]);
    const eds = await ads.expectNext(TYPE_URL.endpoints);
    const addresses = (eds.resources[0] as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[] }).endpoints[0]!.lb_endpoints.map(
      (e) => e.endpoint.address.socket_address.address,
    );
    expect(addresses).toEqual(["127.0.0.1"]);
  });

  it("after naming resources, an empty list means none, not every type; '*' asks for every type", async () => {
    const { open, register } = await setup();
    await register("alpha", 9861);
    const ads = open();
    ads.send(TYPE_URL.listener, ["alpha"]);
    const named = await ads.expectNext(TYPE_URL.listener);
    ads.send(TYPE_URL.listener, [], named);
    const none = await ads.expectNext(TYPE_URL.listener);
    expect(none.resources).toEqual([]);
    ads.send(TYPE_URL.listener, [], none); // the ACK of "none": still none
    await register("beta", 9862);
    ads.send(TYPE_URL.cluster, ["alpha"]);
    // The next response is the Cluster's: no Listener was pushed for beta (or re-sent for alpha).
    expect((await ads.expectNext(TYPE_URL.cluster)).resources).toHaveLength(1);
    const star = open();
    star.send(TYPE_URL.cluster, ["*"]);
    expect(names(await star.expectNext(TYPE_URL.cluster))).toEqual(["alpha", "beta"]);
  });

  it("reports a NACK repeated for the same response once, with its client-chosen fields clipped", async () => {
    const { stack, open, register, lines } = await setup();
    await register("billing", 9871);
    const ads = open();
    ads.send(TYPE_URL.endpoints, ["billing"]);
    const eds = await ads.expectNext(TYPE_URL.endpoints);
    const huge = "x".repeat(100_000);
    ads.send(TYPE_URL.endpoints, ["billing"], { version: "", nonce: eds.nonce }, huge);
    ads.send(TYPE_URL.endpoints, ["billing"], { version: "", nonce: eds.nonce }, huge);
    ads.send(TYPE_URL.endpoints, ["billing", "more"], { version: "", nonce: eds.nonce });
    await ads.expectNext(TYPE_URL.endpoints); // every request before it was read
    expect(parseExposition(await stack.metrics.exposition()).value("registry_xds_nacks_total", { type: "ClusterLoadAssignment" })).toBe(1);
    const nacks = lines.filter((l) => l.includes("NACK"));
    expect(nacks).toHaveLength(1);
    expect(nacks[0]!.length).toBeLessThan(2000);
  });

  it("takes the node's credentials over a malformed authorization header, and names the node fields when instance credentials are half there", async () => {
    const { open, register } = await setup();
    const instance = await register("billing", 9881);
    const malformed = new Metadata();
    malformed.set("authorization", "Basic dXNlcjpwYXNz");
    const ads = open({ registry_key: TEST_KEY }, malformed);
    ads.send(TYPE_URL.listener, ["billing"]);
    expect(names(await ads.expectNext(TYPE_URL.listener))).toEqual(["billing"]);
    const half = open({ registry_service_id: instance.serviceId });
    half.send(TYPE_URL.listener, ["billing"]);
    const refused = await half.status();
    expect(refused.code).toBe(status.UNAUTHENTICATED);
    expect(refused.details).toMatch(/registry_service_token/);
  });

  it("refuses streams past MAX_XDS_STREAMS_PER_CONNECTION", async () => {
    const { open, register } = await setup({ MAX_XDS_STREAMS_PER_CONNECTION: "2" });
    await register("billing", 9891);
    const [a, b] = [open(), open()];
    for (const s of [a, b]) s.send(TYPE_URL.listener, ["billing"]);
    await a.expectNext(TYPE_URL.listener);
    await b.expectNext(TYPE_URL.listener);
    const third = open();
    third.send(TYPE_URL.listener, ["billing"]);
    const refused = await third.status();
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toBe("MAX_XDS_STREAMS_PER_CONNECTION reached (2 open on this connection)");
  });

  it("bounds a stream: a first request must come, subscriptions are capped, names are bounded, unknown type URLs are ignored; shutdown ends streams UNAVAILABLE", async () => {
    const { stack, open, register } = await setup({ REQUEST_READ_TIMEOUT_MS: "300" });
    await register("billing", 9801);
    const silent = open();
    const quiet = await silent.status();
    expect(quiet.code).toBe(status.INVALID_ARGUMENT);
    expect(quiet.details).toMatch(/first DiscoveryRequest/);

    const greedy = open();
    greedy.send(TYPE_URL.endpoints, Array.from({ length: 10_001 }, (_, i) => `t${i}`));
    const capped = await greedy.status();
    expect(capped.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(capped.details).toMatch(/resource_names/);

    const long = open();
    long.send(TYPE_URL.listener, ["x".repeat(300)]);
    const tooLong = await long.status();
    expect(tooLong.code).toBe(status.INVALID_ARGUMENT);
    expect(tooLong.details).toMatch(/resource_names/);

    const ads = open();
    ads.send("type.googleapis.com/envoy.config.route.v3.RouteConfiguration", ["billing"]);
    ads.send("type.googleapis.com/not.a.Type", ["billing"]);
    ads.send(TYPE_URL.listener, ["billing"]);
    expect(names(await ads.expectNext(TYPE_URL.listener))).toEqual(["billing"]); // the first answer is the Listener's
    const closing = stack.close();
    expect((await ads.status()).code).toBe(status.UNAVAILABLE);
    await closing;
  });
});
