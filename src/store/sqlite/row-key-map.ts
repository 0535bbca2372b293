/**
 * Each live instance's row key in the `instances` table (the rowid SQLite
 * gave its row), kept in memory so the table needs no index on the id.
 * Changes made inside a transaction are journaled: when SQLite rolls the
 * transaction back, `rollback()` puts the keys back as they were, so the map
 * and the rows stay in step.
 */
export class RowKeyMap {
  private readonly keys = new Map<string, number>();
  /** Each change of the open transaction, as [id, the key it replaced]. */
  private journal: [id: string, before: number | undefined][] = [];

  get size(): number {
    return this.keys.size;
  }

  get(id: string): number | undefined {
    return this.keys.get(id);
  }

  /** A row as loaded at start-up: not journaled, there is nothing to roll back to. */
  load(id: string, key: number): void {
    this.keys.set(id, key);
  }

  set(id: string, key: number): void {
    this.journal.push([id, this.keys.get(id)]);
    this.keys.set(id, key);
  }

  delete(id: string): void {
    this.journal.push([id, this.keys.get(id)]);
    this.keys.delete(id);
  }

  /** The transaction committed: its changes stay. */
  commit(): void {
    this.journal = [];
  }

  /** The transaction rolled back: undoes its changes, newest first (one id may change several times). */
  rollback(): void {
    for (let i = this.journal.length - 1; i >= 0; i--) {
      const [id, before] = this.journal[i] as [string, number | undefined];
      if (before === undefined) this.keys.delete(id);
      else this.keys.set(id, before);
    }
    this.journal = [];
  }
}
