import { Metadata, type Client } from "@grpc/grpc-js";
import * as pb from "../../gen/registry/v1/registry.js";
import { BENCH_KEY, registerRequest } from "../lib/workload.js";
import { unaryBytes } from "./lean-client.js";
import type { RawGrpcClient } from "./raw-grpc-client.js";

/** `authorization: Bearer <key>`, as a router or a registering service sends it. */
export function keyMetadata(): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${BENCH_KEY}`);
  return md;
}

const encodeRegister = (r: pb.RegisterRequest): Buffer => Buffer.from(pb.RegisterRequest.encode(r).finish());
const encodeGetByType = (r: pb.GetByTypeRequest): Buffer => Buffer.from(pb.GetByTypeRequest.encode(r).finish());

let seq = 0;

/** Registers one instance of `serviceType`; resolves with the encoded answer. */
export function register(client: Client, serviceType: string, n = ++seq): Promise<Buffer> {
  return unaryBytes(client, pb.RegistryServiceService.register.path, encodeRegister, registerRequest(serviceType, n), keyMetadata());
}

/** `getByType` through the raw HTTP/2 client: the read loop's call (see raw-grpc-client.ts). */
export function getByTypeRaw(client: RawGrpcClient, serviceType: string): Promise<Buffer> {
  return client.unary(pb.RegistryServiceService.getByType.path, pb.GetByTypeRequest.encode({ serviceType, includeUnhealthy: false, includeDraining: false, selector: {} }).finish(), KEY_HEADER);
}

const KEY_HEADER = { authorization: `Bearer ${BENCH_KEY}` };

/** The healthy instances of `serviceType`, as the encoded GetByTypeResponse. */
export function getByType(client: Client, serviceType: string): Promise<Buffer> {
  return unaryBytes(
    client,
    pb.RegistryServiceService.getByType.path,
    encodeGetByType,
    { serviceType, includeUnhealthy: false, includeDraining: false, selector: {} },
    keyMetadata(),
  );
}
