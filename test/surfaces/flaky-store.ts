import type { Change } from "../../src/registry/types.js";
import { MemoryStore } from "../../src/store/memory-store.js";

/**
 * A real MemoryStore whose commits can be made to fail the way a broken disk
 * makes SQLite fail (a plain Error, not a domain answer): the fault is
 * injected at the storage boundary, like a TCP proxy injects network faults.
 */
export class FlakyStore extends MemoryStore {
  failing = false;
  /** Calls of `checkWritable` so far. */
  writeChecks = 0;

  override async commitBatch(changes: readonly Change[]): Promise<void> {
    if (this.failing) throw Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" });
    return super.commitBatch(changes);
  }

  /** As SqliteStore's: a write of the store's own, failing as commits do. */
  async checkWritable(): Promise<void> {
    this.writeChecks++;
    if (this.failing) throw Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" });
  }
}
