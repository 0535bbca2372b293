import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { WatchInstancesRequest } from "../../gen/registry/v1/registry.js";

/** `since_revision`'s field number in WatchInstancesRequest (proto/registry/v1/registry.proto). */
const SINCE_REVISION_FIELD = 2;

/**
 * Decodes a WatchInstancesRequest, including a `since_revision` above 2^53.
 *
 * The generated code (ts-proto, `forceLong=number`) throws on any uint64
 * beyond Number.MAX_SAFE_INTEGER, which grpc-js turns into INTERNAL "Error
 * deserializing request", yet Go, Python and Java clients may send any
 * uint64. `since_revision` is the only uint64 a client sends; every other one
 * is a revision the registry itself wrote (a JS number, so always safe). Every
 * value above 2^53 means the same thing to the registry: a resume point
 * beyond any revision it can hold. Converted with Number(), such a value stays
 * above MAX_SAFE_INTEGER (rounding never brings it down to a safe integer), so
 * it still compares as "ahead of the registry" and gets RESET (SPEC 4.3).
 * Keeping numbers spares the SDK's public types (`revision: number`) and every
 * caller a switch to bigint for no gain in meaning.
 *
 * The field is read exactly (as a bigint) by the protobuf wire reader; the
 * rest of the message is decoded by the generated code, with the field's
 * occurrences cut out of the bytes it sees.
 */
export function decodeWatchInstancesRequest(bytes: Uint8Array): WatchInstancesRequest {
  const reader = new BinaryReader(bytes);
  let sinceRevision: bigint | undefined;
  const kept: Uint8Array[] = [];
  let keptFrom = 0;
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === SINCE_REVISION_FIELD && wireType === WireType.Varint) {
      sinceRevision = BigInt(reader.uint64()); // the last occurrence wins, as for any proto3 scalar
      kept.push(bytes.subarray(keptFrom, start));
      keptFrom = reader.pos;
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  if (sinceRevision === undefined) return WatchInstancesRequest.decode(bytes);
  kept.push(bytes.subarray(keptFrom));
  const message = WatchInstancesRequest.decode(Buffer.concat(kept));
  message.sinceRevision = Number(sinceRevision);
  return message;
}
