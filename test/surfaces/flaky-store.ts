import type { Change } from "../../src/registry/types.js";
import { MemoryStore } from "../../src/store/memory-store.js";

/**
 * A real MemoryStore whose commits can be made to fail the way a broken disk
 * makes SQLite fail (a plain Error, not a domain answer): the fault is
 * injected at the storage boundary, like a TCP proxy injects network faults.
 */
export class FlakyStore extends MemoryStore {
  failing = false;

  override async commitBatch(changes: readonly Change[]): Promise<void> {
    if (this.failing) throw Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" });
    return super.commitBatch(changes);
  }
}
