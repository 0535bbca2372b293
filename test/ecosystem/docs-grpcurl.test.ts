import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_KEY } from "../support/registry-harness.js";
import { grpcurlLines, parseGrpcurl, runGrpcurl, type GrpcurlResult } from "./grpcurl.js";
import { startStack } from "./stack.js";

/**
 * Every grpcurl command in the README and docs/operations.md, run in document
 * order against a running server through server reflection only (see
 * grpcurl.ts): list, describe, health Check and every RegistryService call.
 * A command that would fail for a user (unknown symbol or field, wrong
 * header, bad JSON) fails here.
 */
const DOCS = ["README.md"] as const;

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
        streamUntil: (m) => m.type === "EVENT_TYPE_SYNCED",
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
    expect(find("/Register")).toMatchObject({ kind: "invoke", responses: [{ service_id: expect.any(String), token: expect.any(String) }] });
    const watch = find("/WatchInstances");
    expect(watch?.kind === "invoke" && watch.responses.at(-1)?.type).toBe("EVENT_TYPE_SYNCED");
    expect(find("/Unregister")).toMatchObject({ kind: "invoke", responses: [{ instance: { id: vars.ID } }] });
  });
});
