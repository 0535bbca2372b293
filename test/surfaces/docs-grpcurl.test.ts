import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_KEY } from "../support/registry-harness.js";
import { curlLines, runCurl } from "./curl.js";
import { grpcurlLines, parseGrpcurl, runGrpcurl, type GrpcurlResult } from "./grpcurl.js";
import { startStack } from "../support/stack.js";

/**
 * Every grpcurl command in the README and docs/operations.md, run in document
 * order against a running server through server reflection only (see
 * grpcurl.ts): list, describe, health Check and every RegistryService call.
 * A command that would fail for a user (unknown symbol or field, wrong
 * header, bad JSON) fails here. The curl examples of the HTTP/JSON API run
 * the same way, with fetch.
 */
const DOCS = ["README.md", "docs/operations.md"] as const;

describe.each(DOCS)("grpcurl commands in %s", (doc) => {
  const text = readFileSync(new URL(`../../${doc}`, import.meta.url), "utf8");
  const lines = grpcurlLines(text);
  let server: Awaited<ReturnType<typeof startStack>>;
  const vars: Record<string, string> = { KEY: TEST_KEY };
  const results: { line: string; result: GrpcurlResult }[] = [];

  beforeAll(async () => {
    server = await startStack();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("documents list, describe, the health check and every RegistryService method", () => {
    const joined = lines.join("\n");
    for (const needle of [" list", " describe ", "grpc.health.v1.Health/Check", "/Register", "/GetByType", "/ListServices", "/WatchInstances", "/Unregister"]) {
      expect(joined, `${doc} has no grpcurl command with ${needle}`).toContain(needle);
    }
  });

  it("every command works verbatim against localhost:4000 (run here against the test server)", async () => {
    for (const line of lines) {
      const command = parseGrpcurl(line, vars);
      expect(command.address, line).toBe("localhost:4000");
      expect(command.plaintext, line).toBe(true);
      const result = await runGrpcurl(command, {
        address: server.address,
        // A watch until its snapshot is complete; a health Watch after its first status.
        streamUntil: (m) => m.type === "EVENT_TYPE_SYNCED" || "status" in m,
      }).catch((err: Error) => {
        throw new Error(`${doc}: \`${line}\` failed: ${err.message}`);
      });
      results.push({ line, result });
      if (result.kind === "invoke" && command.verb.kind === "invoke" && command.verb.method === "Register") {
        vars.ID = String(result.responses[0]?.service_id);
        vars.TOKEN = String(result.responses[0]?.token);
      }
    }
    expect(results).toHaveLength(lines.length);
  });

  it("gives the answers the docs promise", () => {
    const find = (needle: string) => results.find((r) => r.line.includes(needle))?.result;
    expect(find(" list")).toMatchObject({ kind: "list", names: expect.arrayContaining(["registry.v1.RegistryService", "grpc.health.v1.Health"]) });
    expect(find("grpc.health.v1.Health/Check")).toEqual({ kind: "invoke", responses: [{ status: "SERVING" }] });
    expect(find("/Register")).toMatchObject({
      kind: "invoke",
      // grpcurl prints enums by name: the contract's spelling of health.
      responses: [{ service_id: expect.any(String), token: expect.any(String), instance: { health: "HEALTH_STATUS_HEALTHY" } }],
    });
    const watch = find("/WatchInstances");
    expect(watch?.kind === "invoke" && watch.responses.at(-1)?.type).toBe("EVENT_TYPE_SYNCED");
    expect(find("/Unregister")).toMatchObject({ kind: "invoke", responses: [{ instance: { id: vars.ID } }] });
  });
});

describe("curl commands in docs/operations.md", () => {
  const lines = curlLines(readFileSync(new URL("../../docs/operations.md", import.meta.url), "utf8"));
  let server: Awaited<ReturnType<typeof startStack>>;
  beforeAll(async () => {
    server = await startStack();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("documents every route of the HTTP/JSON API", () => {
    for (const needle of ["-X POST localhost:4001/service ", "localhost:4001/services ", "/services/billing", "localhost:4001/service/$ID", "-X DELETE"]) {
      expect(lines.join("\n"), needle).toContain(needle);
    }
  });

  it("every command works verbatim against localhost:4001 (run here against the test server)", async () => {
    const vars: Record<string, string> = { KEY: TEST_KEY };
    const answers: unknown[] = [];
    for (const line of lines) {
      const { status, body } = await runCurl(line, vars, server.httpUrl);
      expect(status, `${line} answered ${JSON.stringify(body)}`).toBeLessThan(300);
      answers.push(body);
      const created = body as { serviceId?: string; token?: string };
      if (created.serviceId && created.token) {
        vars.ID = created.serviceId;
        vars.TOKEN = created.token;
      }
    }
    expect(answers[0]).toMatchObject({ serviceId: vars.ID, instance: { serviceType: "billing", healthCheckPath: "/ready" } });
    expect(answers.at(-1)).toMatchObject({ instance: { id: vars.ID } });
  });
});
