import { WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import type { WatchEvent } from "../registry/types.js";
import { toWatchResponse } from "./proto-mapping.js";

/**
 * Encodes watch events to wire bytes, once per event: a change or probe result
 * pushed to a thousand watchers is encoded a single time and every stream
 * writes the same Buffer. Entries die with the event (WeakMap), so the cache
 * holds no more than the history and the watchers' queues already do. A
 * change's `panic` flag is the registry's record of that change (the hub and
 * catch-up from history read the same), so keying by the change is enough.
 */
export class WatchEventEncoder {
  private readonly cache = new WeakMap<object, Buffer>();

  /** `epoch` is read per encoding, so the encoder may be built before the registry starts. */
  constructor(private readonly epoch: () => string) {}

  encode(event: WatchEvent): Buffer {
    const key = event.type === "change" ? event.change : event.type === "probe" ? event.probe : undefined;
    if (key) {
      const cached = this.cache.get(key);
      if (cached) return cached;
    }
    const bytes = Buffer.from(WatchInstancesResponse.encode(toWatchResponse(event, this.epoch())).finish());
    if (key) this.cache.set(key, bytes);
    return bytes;
  }
}
