import type { WatchEvent } from "../registry/types.js";
import { instanceJson, type InstanceJson } from "./json-mapping.js";

/** One event as the browser reads it (the `data:` line): the watch stream's fields, camelCase, as the JSON API spells them. */
interface EventJson {
  readonly type: string;
  readonly revision: number;
  readonly epoch: string;
  readonly instance?: InstanceJson;
  readonly removalReason?: string;
  readonly failureReason?: string;
  readonly snapshot?: boolean;
  readonly panic?: boolean;
}

/**
 * Encodes watch events as server-sent event records (`id:`, `event:`,
 * `data:` lines), a change once for every `GET /watch` stream, as
 * WatchEventEncoder does for gRPC: a change reaching every open console is
 * serialised a single time and each stream writes the same Buffer. Entries
 * die with the change (WeakMap). A change's `panic` flag is the registry's
 * record of that change, so keying by the change is enough.
 */
export class SseEventEncoder {
  private readonly cache = new WeakMap<object, Buffer>();

  /** `epoch` is read per encoding, so the encoder may be built before the registry starts. */
  constructor(private readonly epoch: () => string) {}

  /** The event's record, or undefined for events the stream does not carry (probe results: never asked for). */
  encode(event: WatchEvent): Buffer | undefined {
    if (event.type !== "change") return record(event, this.epoch());
    const cached = this.cache.get(event.change);
    if (cached) return cached;
    const bytes = record(event, this.epoch()) as Buffer;
    this.cache.set(event.change, bytes);
    return bytes;
  }
}

function record(event: WatchEvent, epoch: string): Buffer | undefined {
  let json: EventJson;
  let id: number | undefined;
  switch (event.type) {
    case "change": {
      const { change } = event;
      id = change.revision;
      const base = { revision: change.revision, epoch, instance: instanceJson(change.instance), ...(event.panic ? { panic: true } : {}) };
      if (change.kind === "removed") json = { type: "removed", ...base, removalReason: change.reason.toUpperCase() };
      else if (change.kind === "health") {
        json = change.instance.health === "healthy" ? { type: "health_passed", ...base } : { type: "health_failed", ...base, failureReason: change.failureReason ?? "" };
      } else json = { type: change.kind, ...base };
      break;
    }
    case "snapshot":
      json = { type: "registered", revision: event.revision, epoch, instance: instanceJson(event.instance), snapshot: true, ...(event.panic ? { panic: true } : {}) };
      break;
    case "synced":
    case "bookmark":
      id = event.revision;
      json = { type: event.type, revision: event.revision, epoch, ...(event.type === "bookmark" && event.panic ? { panic: true } : {}) };
      break;
    case "reset":
      json = { type: "reset", revision: event.revision, epoch };
      break;
    default:
      return undefined;
  }
  return Buffer.from(`${id === undefined ? "" : `id: ${id}\n`}event: ${json.type}\ndata: ${JSON.stringify(json)}\n\n`);
}
