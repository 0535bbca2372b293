import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Instance as PbInstance } from "../../gen/registry/v1/registry.js";
import type { Instance } from "../registry/types.js";
import { toProtoInstance } from "./proto-mapping.js";

interface Entry {
  readonly instances: readonly Instance[];
  /** The whole answer: the encoded instances, then the revision field. */
  answer: Buffer;
  /** Length of the instances part of `answer`. */
  readonly bodyLength: number;
  revision: number;
  panic: boolean;
}

/**
 * Caches the encoded instance list of each GetByType answer (profiles put
 * most of a GetByType in encoding an answer that had not changed). Instances
 * are immutable (a change makes a new object), so an answer is still valid
 * when the list holds the very same objects: checking that costs one pointer
 * comparison per instance instead of mapping and encoding each one again.
 *
 * Bounded: empty answers (any name a caller makes up) are never cached, and
 * the cache is dropped whole once it holds more than `maxBytes`.
 */
export class TypeAnswerCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  /** The encoded GetByTypeResponse for `instances` at `revision`, flagged with `panic`. */
  encode(key: string, instances: readonly Instance[], revision: number, panic = false): Buffer {
    let entry = this.entries.get(key);
    // The index hands out the same array until the type changes: usually one comparison.
    if (entry && (entry.instances === instances || sameObjects(entry.instances, instances))) {
      // Same instances: the same answer while the revision holds; else a new tail.
      if (entry.revision !== revision || entry.panic !== panic) {
        const previous = entry.answer.length;
        entry.answer = withTail(entry.answer.subarray(0, entry.bodyLength), revision, panic);
        entry.revision = revision;
        entry.panic = panic;
        if (this.entries.get(key) === entry) this.bytes += entry.answer.length - previous;
      }
      return entry.answer;
    }
    const body = encodeInstances(instances);
    const answer = withTail(body, revision, panic);
    if (entry) {
      this.bytes -= entry.answer.length;
      this.entries.delete(key);
    }
    entry = { instances, answer, bodyLength: body.length, revision, panic };
    if (instances.length > 0) {
      if (this.bytes + answer.length > this.maxBytes) {
        this.entries.clear();
        this.bytes = 0;
      }
      this.entries.set(key, entry);
      this.bytes += answer.length;
    }
    return answer;
  }
}

/** A GetByTypeResponse encoded with no cache (answers to a selector). */
export function encodeTypeAnswer(instances: readonly Instance[], revision: number, panic: boolean): Buffer {
  return withTail(encodeInstances(instances), revision, panic);
}

/** The response's instances field (1), each instance encoded. */
function encodeInstances(instances: readonly Instance[]): Uint8Array {
  const w = new BinaryWriter();
  for (const i of instances) PbInstance.encode(toProtoInstance(i), w.uint32(10).fork()).join();
  return w.finish();
}

/** `body` followed by the response's revision (2) and panic (3) fields, each omitted at its default as proto3 does. */
function withTail(body: Uint8Array, revision: number, panic: boolean): Buffer {
  const tail = new BinaryWriter();
  if (revision !== 0) tail.uint32(16).uint64(revision);
  if (panic) tail.uint32(24).bool(true);
  return Buffer.concat([body, tail.finish()]);
}

function sameObjects(a: readonly Instance[], b: readonly Instance[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
