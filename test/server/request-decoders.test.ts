import { describe, expect, it } from "vitest";
import { GetByTypeRequest } from "../../gen/registry/v1/registry.js";
import { decodeGetByTypeRequest } from "../../src/server/request-decoders.js";

describe("request decoders: a map key named __proto__", () => {
  const withProtoKey = (): Uint8Array =>
    GetByTypeRequest.encode({ serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: JSON.parse('{"__proto__": "x"}') }).finish();

  it("keeps the entry the generated decoder drops, as an own property", () => {
    const message = decodeGetByTypeRequest(withProtoKey());
    expect(Object.getOwnPropertyDescriptor(message.selector, "__proto__")?.value).toBe("x");
    expect(Object.getPrototypeOf(message.selector)).toBe(Object.prototype);
  });

  it("takes what the generated decoder takes: a message ending in a stray end tag still decodes", () => {
    const bytes = Buffer.concat([Buffer.from(withProtoKey()), Buffer.from([0x0c])]); // END_GROUP of field 1
    expect(() => GetByTypeRequest.decode(bytes)).not.toThrow();
    expect(decodeGetByTypeRequest(bytes).serviceType).toBe("api");
  });
});
