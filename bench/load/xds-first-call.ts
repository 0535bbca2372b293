/**
 * The client side of scenario 7's first part, in one process so every time
 * is read on one clock: two routers on one service type, a proxyless xDS
 * client (@grpc/grpc-js-xds, a channel on `xds:///<type>` with a bootstrap of
 * its own) and the SDK's resolver (a channel on `registry:///<type>`, round
 * robin), each sending a Who call every few milliseconds to the type's
 * backends (grpc-js servers in this process). A round starts a fresh backend
 * (not timed), registers it, and times from the Register's acknowledgement
 * to the first call each router delivered to it, as the backend's handler
 * saw it; then unregisters and closes it.
 */
import { performance } from "node:perf_hooks";
import { Client, credentials, Server, ServerCredentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { register as registerXds } from "@grpc/grpc-js-xds";
import * as pb from "../../gen/registry/v1/registry.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { registerRegistryResolver, ROUND_ROBIN_SERVICE_CONFIG } from "../../src/client/registry-resolver.js";
import { emit, serveIpc } from "../lib/ipc.js";
import { sleep } from "../lib/stats.js";
import { BENCH_KEY } from "../lib/workload.js";
import { keyMetadata } from "./grpc-ops.js";

/** What `setup` takes. */
export interface FirstCallSettings {
  readonly registry: string;
  readonly serviceType: string;
  /** Backends that stay registered through the run. */
  readonly standing: number;
  /** Each router sends a call this often (not waiting for the last). */
  readonly callEveryMs: number;
}

/** One round: ms from the Register's acknowledgement to each router's first call to the new backend (null: none within the wait). */
export interface FirstCallSample {
  readonly xdsMs: number | null;
  readonly resolverMs: number | null;
}

type Router = "xds" | "resolver";
const ROUTERS: readonly Router[] = ["xds", "resolver"];
/** A call's body names its router, so a backend knows who sent it. */
const TAG: Record<Router, Buffer> = { xds: Buffer.from("x"), resolver: Buffer.from("r") };
const WHO_PATH = "/bench.Who/Who";
const identity = (b: Buffer): Buffer => b;
const EMPTY = Buffer.alloc(0);
/** grpc-js-xds's channel option for a bootstrap of the channel's own (as test/support/xds-backend.ts uses it). */
const XDS_BOOTSTRAP_OPTION = "grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config";

interface Backend {
  readonly server: Server;
  readonly port: number;
  id: string;
  /** When each router's first call reached the handler. */
  readonly first: Partial<Record<Router, number>>;
  /** Called once every router's first call is in. */
  onAll: () => void;
}

let settings: FirstCallSettings;
let registry: pb.RegistryServiceClient;
const routers = new Map<Router, Client>();
const standing: Backend[] = [];
let callTimer: NodeJS.Timeout | undefined;
const errors: Record<Router, number> = { xds: 0, resolver: 0 };

function unary<Req, Res>(method: (req: Req, md: Metadata, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => method.call(registry, req, keyMetadata(), (err, res) => (err ? reject(err) : resolve(res))));
}

async function startBackend(): Promise<Backend> {
  const server = new Server();
  const backend: Backend = { server, port: 0, id: "", first: {}, onAll: () => {} };
  server.addService(
    { who: { path: WHO_PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      who: (call: { request: Buffer }, callback: (err: null, value: Buffer) => void) => {
        const router: Router = call.request[0] === TAG.xds[0] ? "xds" : "resolver";
        if (backend.first[router] === undefined) {
          backend.first[router] = performance.now();
          if (ROUTERS.every((r) => backend.first[r] !== undefined)) backend.onAll();
        }
        callback(null, EMPTY);
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return Object.assign(backend, { port });
}

async function registerBackend(b: Backend): Promise<void> {
  const res = await unary<pb.RegisterRequest, pb.RegisterResponse>(registry.register, { serviceType: settings.serviceType, host: "127.0.0.1", port: b.port, metadata: {} });
  b.id = res.serviceId;
}

/** Resolves once every router's first call reached `b`, or after `timeoutMs`. */
function reached(b: Backend, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    b.onAll = () => {
      clearTimeout(timer);
      resolve();
    };
    if (ROUTERS.every((r) => b.first[r] !== undefined)) b.onAll();
  });
}

function callEach(): void {
  for (const [router, client] of routers) {
    client.makeUnaryRequest(WHO_PATH, identity, identity, TAG[router], { deadline: Date.now() + 1000 }, (err) => {
      if (err) errors[router]++;
    });
  }
}

serveIpc({
  /** Starts the standing backends, registers them, and the two routers; resolves once both have reached every standing backend. */
  async setup(s: FirstCallSettings) {
    settings = s;
    registry = new pb.RegistryServiceClient(s.registry, credentials.createInsecure());
    registerXds();
    registerRegistryResolver({ client: new RegistryClient({ addresses: [s.registry], auth: { key: BENCH_KEY } }) });
    for (let i = 0; i < s.standing; i++) {
      const b = await startBackend();
      await registerBackend(b);
      standing.push(b);
    }
    const bootstrap = {
      xds_servers: [{ server_uri: s.registry, channel_creds: [{ type: "insecure" }], server_features: ["xds_v3"] }],
      // grpc-js-xds refuses a node without a locality.
      node: { id: "bench-xds-router", locality: {}, metadata: { registry_key: BENCH_KEY } },
    };
    routers.set("xds", new Client(`xds:///${s.serviceType}`, credentials.createInsecure(), { [XDS_BOOTSTRAP_OPTION]: JSON.stringify(bootstrap) }));
    routers.set("resolver", new Client(`registry:///${s.serviceType}`, credentials.createInsecure(), { "grpc.service_config": ROUND_ROBIN_SERVICE_CONFIG }));
    callTimer = setInterval(callEach, s.callEveryMs);
    await Promise.all(standing.map((b) => reached(b, 30_000)));
    const missing = standing.filter((b) => ROUTERS.some((r) => b.first[r] === undefined));
    if (missing.length > 0) throw new Error(`${missing.length} standing backend(s) not reached by both routers within 30 s (call errors: ${JSON.stringify(errors)})`);
  },
  /** One fresh backend: registered, timed to each router's first call, unregistered and closed. */
  async round({ timeoutMs }: { timeoutMs: number }): Promise<FirstCallSample> {
    const b = await startBackend();
    await registerBackend(b);
    const ackAt = performance.now();
    await reached(b, timeoutMs);
    await unary<pb.UnregisterRequest, pb.UnregisterResponse>(registry.unregister, { instanceId: b.id });
    // Both routers drop it before it closes (a call still in flight to it then fails, harmlessly: counted in errors).
    await sleep(250);
    b.server.forceShutdown();
    const since = (t: number | undefined): number | null => (t === undefined ? null : t - ackAt);
    return { xdsMs: since(b.first.xds), resolverMs: since(b.first.resolver) };
  },
  stop() {
    clearInterval(callTimer);
    for (const c of routers.values()) c.close();
    for (const b of standing) b.server.forceShutdown();
    setImmediate(() => process.exit(0));
  },
  errors: () => errors,
});
emit("ready");
