import { BinaryWriter } from "@bufbuild/protobuf/wire";
import type { OutgoingHttpHeaders } from "node:http2";
import { TEST_KEY } from "../support/registry-harness.js";

/**
 * Malformed gRPC calls for the fuzz harness (grpc-call-fuzz.test.ts): each
 * case is the headers and the DATA chunks of one HTTP/2 stream, drawn from a
 * seeded PRNG so a run is the same every time for the same seed.
 */

/** One call as raw HTTP/2: request headers, then body chunks, each written as it comes. */
export interface FuzzCall {
  readonly kind: string;
  readonly headers: OutgoingHttpHeaders;
  readonly chunks: readonly Buffer[];
  /** End the stream after the chunks (half-close); else leave it open until the harness cancels it. */
  readonly end: boolean;
  /** Write the chunks one per event-loop turn, going on after the server has answered. */
  readonly trickle?: boolean;
}

/** A deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const METHODS = [
  "/registry.v1.RegistryService/Register",
  "/registry.v1.RegistryService/GetByType",
  "/registry.v1.RegistryService/GetInstance",
  "/registry.v1.RegistryService/Unregister",
  "/registry.v1.RegistryService/ListServices",
  "/registry.v1.RegistryService/WatchInstances",
  "/registry.v1.RegistryService/Drain",
  "/registry.v1.RegistryService/Heartbeat",
  "/registry.v1.RegistryService/KeepAlive",
  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
  "/grpc.health.v1.Health/Check",
  "/grpc.health.v1.Health/Watch",
  "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/** A length-prefixed message: flag byte, 4-byte big-endian length, bytes. */
export function frame(message: Uint8Array, flag = 0, declaredLength = message.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flag & 0xff, 0);
  head.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([head, message]);
}

/** Valid request messages, for mutation. */
function validMessages(rand: () => number): Uint8Array[] {
  const w = (): BinaryWriter => new BinaryWriter();
  const port = 1 + Math.floor(rand() * 65535);
  return [
    w().uint32(10).string("fuzz").uint32(16).uint32(port).uint32(26).string("127.0.0.1").uint32(34).fork().uint32(10).string("k").uint32(18).string("v").join().finish(),
    w().uint32(10).string("fuzz").uint32(16).bool(true).finish(),
    w().uint32(10).string("00000000-0000-0000-0000-000000000000").finish(),
    w().uint32(10).string("").uint32(16).uint64(BigInt(Math.floor(rand() * 1000))).uint32(26).string("epoch").finish(),
    w().uint32(10).string("registry.v1.RegistryService").finish(), // health Check
    w().uint32(26).string("registry.v1.RegistryService").finish(), // reflection file_containing_symbol
    new Uint8Array(0),
  ];
}

/** Draws `count` calls from `seed`. */
export function fuzzCalls(count: number, seed: number): FuzzCall[] {
  const rand = prng(seed);
  const int = (max: number): number => Math.floor(rand() * max);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const noise = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const printable = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(0x20 + int(0x5f))).join("");
  const mutate = (bytes: Uint8Array): Buffer => {
    const out = Buffer.from(bytes);
    if (out.length === 0) return noise(1 + int(8));
    for (let i = 1 + int(4); i > 0; i--) out[int(out.length)] = int(256);
    return int(4) === 0 ? out.subarray(0, int(out.length)) : out;
  };
  const baseHeaders = (): OutgoingHttpHeaders => ({
    ":method": "POST",
    ":path": pick(METHODS),
    "content-type": "application/grpc",
    te: "trailers",
    ...(int(3) > 0 ? { authorization: `Bearer ${TEST_KEY}` } : {}),
  });
  /** Headers with something odd: grpc-js must answer the call alone whatever they hold. */
  const oddHeaders = (): OutgoingHttpHeaders => {
    const h = baseHeaders();
    switch (int(13)) {
      case 12:
        // Malformed at the HTTP/2 layer: nghttp2 resets the stream (PROTOCOL_ERROR) before grpc-js sees it.
        return { ...h, ":path": pick(["*", "abc", "registry.v1.RegistryService/ListServices", "?x"]) };
      case 0:
        return { ...h, "grpc-timeout": pick(["", "1", "99999999999S", "-1m", "1x", "0n", "1H", printable(8)]) };
      case 1:
        return { ...h, "grpc-encoding": pick(["gzip", "deflate", "identity", "snappy", "", printable(6)]) };
      case 2:
        return { ...h, "content-type": pick(["application/grpc+proto", "application/grpc+json", "application/json", "text/plain", "application/grpcx", ""]) };
      case 3:
        return { ...h, ":path": pick(["/", "//", "/registry.v1.RegistryService/", `/${printable(int(300))}`, "/registry.v1.RegistryService/Register/extra", "*"]) };
      case 4:
        return { ...h, "x-bin": noise(int(64)).toString("latin1").replace(/[^\x20-\x7e]/g, "") }; // unpadded/odd base64
      case 5:
        return { ...h, "x-service-token-bin": printable(int(100)) };
      case 6:
        return { ...h, authorization: pick(["Bearer", "Bearer ", "Basic abc", `Bearer ${printable(int(4000))}`, printable(int(100))]) };
      case 7:
        return { ...h, "x-service-id": printable(int(500)), "x-service-token": printable(int(500)) };
      case 8:
        return { ...h, "grpc-accept-encoding": printable(int(200)), "user-agent": printable(int(200)) };
      case 9:
        return { ...h, [`x-${printable(1 + int(20)).toLowerCase().replace(/[^a-z0-9-]/g, "a")}`]: printable(int(8000)) };
      case 10: {
        const { te: _te, ...rest } = h;
        return rest;
      }
      default:
        return { ...h, ":method": pick(["GET", "PUT", "OPTIONS", "HEAD"]) };
    }
  };
  const bodyKinds: (() => { kind: string; chunks: Buffer[]; end: boolean; trickle?: boolean })[] = [
    () => ({ kind: "random bytes", chunks: [noise(int(600))], end: true }),
    () => ({ kind: "mutated message", chunks: [frame(mutate(pick(validMessages(rand))))], end: true }),
    () => {
      const m = pick(validMessages(rand));
      return { kind: "truncated frame", chunks: [frame(m).subarray(0, int(5 + m.length))], end: true };
    },
    () => {
      const m = pick(validMessages(rand));
      return { kind: "length beyond body", chunks: [frame(m, 0, m.length + 1 + int(1 << 20))], end: true };
    },
    () => ({ kind: "declared length 4 GiB", chunks: [frame(noise(int(16)), 0, 0xffffffff)], end: true }),
    () => ({ kind: "compressed flag", chunks: [frame(pick(validMessages(rand)), 1 + int(255))], end: true }),
    () => ({ kind: "compressed garbage", chunks: [frame(noise(1 + int(64)), 1)], end: true }),
    () => {
      const m = frame(pick(validMessages(rand)));
      return { kind: "two messages", chunks: [m, m], end: true };
    },
    () => {
      const f = frame(pick(validMessages(rand)));
      const chunks: Buffer[] = [];
      for (let at = 0; at < f.length; ) {
        const n = 1 + int(4);
        chunks.push(f.subarray(at, at + n));
        at += n;
      }
      return { kind: "byte by byte", chunks, end: true };
    },
    () => ({ kind: "no body", chunks: [], end: true }),
    () => {
      const first = int(2) ? frame(noise(int(16)), 0, 0xffffffff) : frame(pick(validMessages(rand)));
      return { kind: "keeps sending after the answer", chunks: [first, ...Array.from({ length: 1 + int(20) }, () => noise(1 + int(2000)))], end: int(2) === 0, trickle: true };
    },
    () => ({ kind: "left open", chunks: int(2) ? [frame(pick(validMessages(rand)))] : [], end: false }),
  ];
  return Array.from({ length: count }, () => {
    const headers = int(3) === 0 ? oddHeaders() : baseHeaders();
    const body = pick(bodyKinds)();
    return { kind: body.kind, headers, chunks: body.chunks, end: body.end, ...("trickle" in body ? { trickle: body.trickle } : {}) };
  });
}
