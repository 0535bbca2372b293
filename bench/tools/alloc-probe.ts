// EXPERIMENT (not committed): allocation per Register through the API layer, no gRPC.
import { createLogger } from "../../src/logging/logger.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { RegistryApi } from "../../src/api/registry-api.js";
import { toProtoInstance } from "../../src/server/proto-mapping.js";
import { RegisterResponse } from "../../gen/registry/v1/registry.js";
import { BENCH_KEY, BENCH_METADATA } from "../lib/workload.js";

const level = process.argv[2] ?? "info";
const stage = process.argv[3] ?? "all";
const registry = new ServiceRegistry({ logger: createLogger(level), healthChecks: false });
await registry.start();
const api = new RegistryApi(registry, new RegistrationKeys([BENCH_KEY]));
const ctx = { credentials: { key: BENCH_KEY }, peerHost: "127.0.0.1" };
const gcs: number[] = [];
const N = Number(process.argv[4] ?? 100000);
const t0 = process.cpuUsage();
for (let i = 0; i < N; i++) {
  const { instance, token } = await api.register(ctx, { serviceType: "bench-svc", port: 8000 + (i % 1000), host: [10, (i >> 16) & 255, (i >> 8) & 255, i & 255].join("."), metadata: BENCH_METADATA, healthCheckPath: undefined });
  if (stage === "all") RegisterResponse.encode({ serviceId: instance.id, token, instance: toProtoInstance(instance) }).finish();
}
const t = process.cpuUsage(t0);
process.stderr.write(`cpu/op ${((t.user + t.system) / N).toFixed(2)} us\n`);
