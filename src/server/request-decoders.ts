import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { GetByTypeRequest, RegisterRequest, WatchInstancesRequest } from "../../gen/registry/v1/registry.js";

/**
 * Request deserializers for the two requests carrying an integer whose wire
 * value the generated code (ts-proto, `forceLong=number`) would not keep:
 *
 * - WatchInstancesRequest.since_revision (uint64): the generated decode
 *   throws above Number.MAX_SAFE_INTEGER, which grpc-js answers with INTERNAL
 *   "Error deserializing request", yet Go, Python and Java clients may send any
 *   uint64. It is the only uint64 a client sends; every other is a revision the
 *   registry wrote (a safe integer). Every value above 2^53 means one thing to
 *   the registry: a resume point beyond any revision it can hold. Number()
 *   keeps such a value above MAX_SAFE_INTEGER (rounding never brings it down to
 *   a safe integer), so it still compares as "ahead of the registry" and gets
 *   RESET (SPEC 4.3). Keeping numbers spares the SDK's public types
 *   (`revision: number`) a switch to bigint for no gain in meaning.
 * - RegisterRequest.port (uint32): protobuf readers cut a longer varint to its
 *   low 32 bits, so 2^32+80 would register port 80, an instance nobody meant.
 *   Kept whole, it reaches validation and is refused naming `port`.
 *
 * The field is read exactly (as a bigint) by the protobuf wire reader; the rest
 * of the message is decoded by the generated code, with the field's
 * occurrences cut out of the bytes it sees.
 */
export function decodeWatchInstancesRequest(bytes: Uint8Array): WatchInstancesRequest {
  const message = decodeWithExactVarint(bytes, 2, WatchInstancesRequest.decode, (m, value) => {
    m.sinceRevision = value;
  });
  keepProtoKey(bytes, 5, message.selector);
  return message;
}

/** RegisterRequest with `port` as sent (see decodeWatchInstancesRequest). */
export function decodeRegisterRequest(bytes: Uint8Array): RegisterRequest {
  const message = decodeWithExactVarint(bytes, 2, RegisterRequest.decode, (m, value) => {
    m.port = value;
  });
  keepProtoKey(bytes, 4, message.metadata);
  return message;
}

/** GetByTypeRequest with a selector key "__proto__" kept (see keepProtoKey). */
export function decodeGetByTypeRequest(bytes: Uint8Array): GetByTypeRequest {
  const message = GetByTypeRequest.decode(bytes);
  keepProtoKey(bytes, 4, message.selector);
  return message;
}

/**
 * The generated decoder stores a map entry as `map[key] = value`, which for
 * the key "__proto__" sets nothing: a selector of `{"__proto__": "x"}` would
 * arrive empty and select every instance, metadata would lose the entry
 * without a word. Such an entry of map field `fieldNo` (top level) is put
 * back as an own property, for validation to refuse by name as any other
 * malformed key.
 */
function keepProtoKey(bytes: Uint8Array, fieldNo: number, map: Record<string, string>): void {
  // Only a message that holds the word can hold the key; the scan below stays off the common path.
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(PROTO_KEY) === -1) return;
  try {
    scanForProtoKey(bytes, fieldNo, map);
  } catch {
    // Bytes the generated decoder took leniently (a stray end tag): it has answered; nothing to put back.
  }
}

const PROTO_KEY = Buffer.from("__proto__");

/** A 64-bit varint takes at most ten bytes; a longer one is malformed, as protobuf readers hold. */
const MAX_VARINT_BYTES = 10;

function scanForProtoKey(bytes: Uint8Array, fieldNo: number, map: Record<string, string>): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no !== fieldNo || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, no);
      continue;
    }
    const entry = new BinaryReader(reader.bytes());
    let key = "";
    let value = "";
    while (entry.pos < entry.len) {
      const [field, type] = entry.tag();
      if (field === 1 && type === WireType.LengthDelimited) key = entry.string();
      else if (field === 2 && type === WireType.LengthDelimited) value = entry.string();
      else entry.skip(type, field);
    }
    if (key === "__proto__") Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
  }
}

/**
 * Decodes with `decode`, except varint field `fieldNo` (top level), which is
 * read as a full 64-bit value and handed to `assign` as a number. The last
 * occurrence wins, as for any proto3 scalar. Only that one is read; the
 * others are skipped and the rest of the bytes copied into one buffer, so a
 * request repeating the field a million times costs a scan, not an object
 * per occurrence.
 */
function decodeWithExactVarint<T>(
  bytes: Uint8Array,
  fieldNo: number,
  decode: (input: Uint8Array) => T,
  assign: (message: T, value: number) => void,
): T {
  const reader = new BinaryReader(bytes);
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let rest: Buffer | undefined;
  let restLength = 0;
  let keptFrom = 0;
  let lastValueAt = -1;
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [no, wireType] = reader.tag();
    if (no === fieldNo && wireType === WireType.Varint) {
      lastValueAt = reader.pos;
      reader.skip(wireType, no);
      if (reader.pos - lastValueAt > MAX_VARINT_BYTES) throw new Error("invalid varint");
      rest ??= Buffer.allocUnsafe(bytes.byteLength);
      restLength += source.copy(rest, restLength, keptFrom, start);
      keptFrom = reader.pos;
    } else {
      reader.skip(wireType, no);
    }
  }
  if (rest === undefined) return decode(bytes);
  restLength += source.copy(rest, restLength, keptFrom);
  const message = decode(rest.subarray(0, restLength));
  assign(message, Number(BigInt(new BinaryReader(bytes.subarray(lastValueAt)).uint64())));
  return message;
}
