import { request } from "node:https";
import { tmpdir } from "node:os";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { GrpcReflection } from "grpc-js-reflection-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { loadTls } from "../../src/config/tls.js";
import { call, callError, keyAuth } from "../support/registry-harness.js";
import { runCli, tempDataDir } from "../support/server-process.js";
import { closeReflection } from "./grpcurl.js";
import { check, healthClient } from "../support/health-client.js";
import { makeTestPki, type Pem, type TestPki } from "../support/test-pki.js";
import { startStack } from "../support/stack.js";

const REGISTER = { serviceType: "api", port: 8080, host: "10.0.0.1", metadata: {} };

/** GET over HTTPS trusting `ca`, optionally with a client certificate. */
function httpsGet(url: string, ca: string, client?: Pem): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, ...(client ? { cert: client.cert, key: client.key } : {}), agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function client(address: string, ca: string, pem?: Pem): RegistryServiceClient {
  const creds = credentials.createSsl(Buffer.from(ca), pem ? Buffer.from(pem.key) : null, pem ? Buffer.from(pem.cert) : null);
  return new RegistryServiceClient(address, creds);
}

let pki: TestPki;
beforeAll(async () => {
  pki = await makeTestPki();
});

describe("TLS (TLS_CERT_FILE, TLS_KEY_FILE)", () => {
  let server: Awaited<ReturnType<typeof startStack>>;
  beforeAll(async () => {
    server = await startStack({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("serves a TLS client: registry calls, grpc.health.v1 and reflection", async () => {
    const c = client(server.address, pki.ca.cert);
    const health = healthClient(server.address, credentials.createSsl(Buffer.from(pki.ca.cert)));
    const reflection = new GrpcReflection(server.address, credentials.createSsl(Buffer.from(pki.ca.cert)), {}, "v1");
    try {
      const res = await call(c, c.register, REGISTER);
      expect(res.instance?.serviceType).toBe("api");
      expect(await check(health)).toBe("SERVING");
      expect(await reflection.listServices()).toContain("registry.v1.RegistryService");
    } finally {
      c.close();
      health.close();
      closeReflection(reflection);
    }
  });

  it("refuses a plaintext client", async () => {
    const c = new RegistryServiceClient(server.address, credentials.createInsecure());
    try {
      const err = await callError(c, c.listServices, {}, keyAuth());
      expect(err.code).toBe(status.UNAVAILABLE);
    } finally {
      c.close();
    }
  });

  it("refuses a client that does not trust the server's CA", async () => {
    const c = client(server.address, pki.strangerClient.cert);
    try {
      expect((await callError(c, c.listServices, {}, keyAuth())).code).toBe(status.UNAVAILABLE);
    } finally {
      c.close();
    }
  });

  it("serves HTTPS on HTTP_PORT with the same certificate; plain HTTP there fails", async () => {
    const https = server.httpUrl.replace("http:", "https:");
    const res = await httpsGet(`${https}/healthz`, pki.ca.cert);
    expect(res).toEqual({ status: 200, body: '{"status":"SERVING"}\n' });
    expect((await httpsGet(`${https}/metrics`, pki.ca.cert)).body).toContain("grpc_server_handled_total");
    await expect(fetch(`${server.httpUrl}/healthz`)).rejects.toThrow();
  });
});

describe("mTLS (TLS_CLIENT_CA_FILE)", () => {
  let server: Awaited<ReturnType<typeof startStack>>;
  beforeAll(async () => {
    server = await startStack({
      TLS_CERT_FILE: pki.server.certFile,
      TLS_KEY_FILE: pki.server.keyFile,
      TLS_CLIENT_CA_FILE: pki.ca.certFile,
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("serves a client presenting a certificate signed by the client CA", async () => {
    const c = client(server.address, pki.ca.cert, pki.client);
    try {
      expect((await call(c, c.register, REGISTER)).instance?.port).toBe(8080);
    } finally {
      c.close();
    }
  });

  it("refuses a client without a certificate, and one whose certificate another CA signed", async () => {
    for (const pem of [undefined, pki.strangerClient]) {
      const c = client(server.address, pki.ca.cert, pem);
      try {
        const err: ServiceError = await callError(c, c.listServices, {}, keyAuth());
        expect(err.code).toBe(status.UNAVAILABLE);
      } finally {
        c.close();
      }
    }
  });

  it("requires the client certificate on HTTPS too", async () => {
    const https = server.httpUrl.replace("http:", "https:");
    expect((await httpsGet(`${https}/healthz`, pki.ca.cert, pki.client)).status).toBe(200);
    await expect(httpsGet(`${https}/healthz`, pki.ca.cert)).rejects.toThrow();
  });
});

describe("TLS settings stop start-up with one line naming the setting", () => {
  const cases: [string, () => Record<string, string>, RegExp][] = [
    ["only a certificate", () => ({ TLS_CERT_FILE: pki.server.certFile }), /^TLS_KEY_FILE \(--tls-key-file\) is not set/],
    ["only a key", () => ({ TLS_KEY_FILE: pki.server.keyFile }), /^TLS_CERT_FILE \(--tls-cert-file\) is not set/],
    ["a missing certificate file", () => ({ TLS_CERT_FILE: `${pki.dir}/nope.crt`, TLS_KEY_FILE: pki.server.keyFile }), /^TLS_CERT_FILE .*cannot be read: ENOENT/],
    ["an unreadable key file", () => ({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.dir }), /^TLS_KEY_FILE .*cannot be read: EISDIR/],
    ["a certificate file that is not PEM", () => ({ TLS_CERT_FILE: pki.server.keyFile, TLS_KEY_FILE: pki.server.keyFile }), /^TLS_CERT_FILE .* does not hold a PEM certificate/],
    ["a key that is not the certificate's", () => ({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.client.keyFile }), /^TLS_KEY_FILE .* is not the key of the certificate/],
    ["a client CA without TLS", () => ({ TLS_CLIENT_CA_FILE: pki.ca.certFile }), /^TLS_CLIENT_CA_FILE needs TLS_CERT_FILE/],
    ["a missing client CA file", () => ({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, TLS_CLIENT_CA_FILE: `${pki.dir}/nope.pem` }), /^TLS_CLIENT_CA_FILE .*cannot be read/],
    ["a client CA file that is not PEM", () => ({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, TLS_CLIENT_CA_FILE: pki.client.keyFile }), /^TLS_CLIENT_CA_FILE .* does not hold a PEM CA certificate/],
  ];

  it.each(cases)("%s", (_name, env, message) => {
    let error: unknown;
    try {
      loadTls(loadConfig({ env: env(), cwd: tmpdir() }));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("\n");
    expect((error as Error).message).not.toContain("BEGIN"); // never prints key material
  });

  it("`serve` exits 2 before listening, printing just that line", async () => {
    const { code, stdout, stderr } = await runCli(["serve"], {
      PORT: "0",
      HTTP_PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: tempDataDir(),
      SERVICE_REGISTRATION_KEY: "k".repeat(24),
      TLS_CERT_FILE: pki.server.certFile,
    });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toBe("service-registry: TLS_KEY_FILE (--tls-key-file) is not set: TLS_CERT_FILE and TLS_KEY_FILE go together\n");
  });
});
