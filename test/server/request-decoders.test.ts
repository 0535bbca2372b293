import { describe, expect, it } from "vitest";
import { GetByTypeRequest, RegisterRequest } from "../../gen/registry/v1/registry.js";
import { decodeGetByTypeRequest, decodeRegisterRequest, decodeWatchInstancesRequest } from "../../src/server/request-decoders.js";

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

describe("request decoders: a varint field read whole", () => {
  const varint = (value: bigint): number[] => {
    const out: number[] = [];
    while (value >= 0x80n) {
      out.push(Number(value & 0x7fn) | 0x80);
      value >>= 7n;
    }
    return [...out, Number(value)];
  };
  /** A RegisterRequest whose port (field 2) comes once per value, between its other fields. */
  const register = (ports: bigint[]): Buffer => {
    const head = Buffer.from(RegisterRequest.encode({ serviceType: "api", host: "10.0.0.1", port: 0, metadata: { zone: "a" } }).finish());
    return Buffer.concat([...ports.map((p) => Buffer.from([0x10, ...varint(p)])), head, Buffer.from([0x10, ...varint(ports.at(-1) ?? 0n)])]);
  };

  it("takes the last occurrence, the other fields intact, however often the field repeats", () => {
    const many = Array.from({ length: 200_000 }, (_, i) => BigInt(i + 1));
    const message = decodeRegisterRequest(register([...many, 2n ** 32n + 80n]));
    expect(message).toMatchObject({ serviceType: "api", host: "10.0.0.1", port: 2 ** 32 + 80, metadata: { zone: "a" } });
    expect(decodeRegisterRequest(register([8080n])).port).toBe(8080);
    const since = decodeWatchInstancesRequest(Buffer.from([0x0a, 0x03, 0x61, 0x70, 0x69, 0x10, ...varint(7n), 0x10, ...varint(2n ** 64n - 1n)]));
    expect(since).toMatchObject({ serviceType: "api", sinceRevision: 2 ** 64 });
  });

  it("refuses a varint longer than ten bytes in any occurrence, not only the last", () => {
    const tenBytes = [0x10, ...Array.from({ length: 9 }, () => 0x80), 0x01];
    expect(decodeRegisterRequest(Buffer.from([...tenBytes, 0x10, 0x50])).port).toBe(80);
    const overlong = [0x10, ...Array.from({ length: 10 }, () => 0x80), 0x01]; // eleven bytes
    expect(() => decodeRegisterRequest(Buffer.from([...overlong, 0x10, 0x50]))).toThrow();
    expect(() => decodeRegisterRequest(Buffer.from([0x10, 0x50, ...overlong]))).toThrow();
  });
});
