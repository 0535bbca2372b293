import { readFileSync } from "node:fs";
import { credentials, Server, ServerCredentials } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { afterEach, describe, expect, it } from "vitest";
import { HealthCheck, HealthCheckKind, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, keyAuth } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { makeTestPki } from "../support/test-pki.js";
import { Waiter } from "../support/waiter.js";

/**
 * GRPC checks over TLS, with the registry's trust settings: a backend whose
 * certificate PROBE_CA_FILE's CA signed passes; the same backend checked in
 * plaintext, or by a registry that does not trust that CA, fails.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});

describe("GRPC checks over TLS", () => {
  it("pass with PROBE_CA_FILE trusting the backend's CA, and fail in plaintext or without that trust", async () => {
    const pki = await makeTestPki();
    const backend = new Server();
    new HealthImplementation({ "": "SERVING" }).addToServer(backend);
    const port = await new Promise<number>((resolve, reject) =>
      backend.bindAsync(
        "127.0.0.1:0",
        ServerCredentials.createSsl(null, [{ private_key: readFileSync(pki.server.keyFile), cert_chain: readFileSync(pki.server.certFile) }]),
        (err, p) => (err ? reject(err) : resolve(p)),
      ),
    );
    cleanups.push(() => backend.forceShutdown());

    const outcomes = async (env: Record<string, string>, tls: boolean) => {
      const stack = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "150", DEREGISTER_AFTER_MS: "0", ...env });
      cleanups.push(() => stack.close());
      const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
      cleanups.push(() => client.close());
      const waiter = new Waiter();
      const results: string[] = [];
      stack.registry.on("healthCheckPassed", () => {
        results.push("passed");
        waiter.notify();
      });
      stack.registry.on("healthCheckFailed", (_i, reason) => {
        results.push(reason);
        waiter.notify();
      });
      const healthCheck = HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, tls });
      await call(client, client.register, { serviceType: "tls", port, host: "127.0.0.1", metadata: {}, healthCheck }, keyAuth());
      await waiter.until(() => results.length >= 2, "two check results", 5000);
      return results.slice(0, 2);
    };
    expect(await outcomes({ PROBE_CA_FILE: pki.ca.certFile }, true)).toEqual(["passed", "passed"]);
    expect(await outcomes({ PROBE_CA_FILE: pki.ca.certFile }, false)).toEqual(["no gRPC connection (UNAVAILABLE)", "no gRPC connection (UNAVAILABLE)"]);
    expect(await outcomes({}, true)).toEqual(["no gRPC connection (UNAVAILABLE)", "no gRPC connection (UNAVAILABLE)"]);
  });
});
