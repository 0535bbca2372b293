import { status } from "@grpc/grpc-js";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ERROR_ANSWERS } from "../../src/api/error-answers.js";
import { invalidArgument, RegistryError } from "../../src/registry/registry-error.js";
import { toHttpError } from "../../src/http/http-errors.js";
import { toServiceError } from "../../src/server/status-mapping.js";

const silent = pino({ level: "silent" });

describe("RegistryError and its answers", () => {
  it("carries the offending field as data; each transport names it its own way", () => {
    const err = invalidArgument("health_check.path", "must start with /");
    expect(err).toMatchObject({ field: "health_check.path", problem: "must start with /", message: "health_check.path: must start with /" });
    expect(toServiceError(err, silent, "Register")).toMatchObject({ code: status.INVALID_ARGUMENT, details: "health_check.path: must start with /" });
    expect(toHttpError(err, silent, "/service").body.error).toEqual({ code: "INVALID_ARGUMENT", message: "healthCheck.path: must start with /" });
    // A message that merely starts like a field name is not rewritten: only the field is.
    const plain = new RegistryError("invalid_argument", "service_type: looks like a field but is text");
    expect(toHttpError(plain, silent, "/service").body.error.message).toBe("service_type: looks like a field but is text");
  });

  it("answers every domain code from the one table, alike on gRPC and HTTP", () => {
    for (const [code, answer] of Object.entries(ERROR_ANSWERS)) {
      const err = new RegistryError(code as keyof typeof ERROR_ANSWERS, "why");
      expect(toServiceError(err, silent, "M").code).toBe(status[answer.grpc]);
      const http = toHttpError(err, silent, "/r");
      expect([http.status, http.body.error.code]).toEqual([answer.http, answer.grpc]);
    }
  });
});
