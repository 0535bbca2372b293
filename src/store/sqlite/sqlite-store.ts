import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import Database from "better-sqlite3";
import { RegistryError } from "../../registry/registry-error.js";
import { ensureDir } from "../../util/ensure-dir.js";
import type { Change, StoredInstance } from "../../registry/types.js";
import type { Mutation, RegistryStore, StoreState } from "../registry-store.js";
import { StoreStateMachine } from "../state-machine.js";
import { decodeChange, encodeChange, fromInstanceValues, INSTANCE_COLUMNS, instanceRowValues, stringSharer, toInstanceRow } from "./row-codec.js";

/** Where `row_key` is in a row read as `SELECT ${INSTANCE_COLUMNS}, row_key`. */
const ROW_KEY_COLUMN = INSTANCE_COLUMNS.split(",").length;
import { migrate, SchemaError } from "./sqlite-schema.js";
import { PRUNE_EVERY, prunesHistory, WRITE_SQL } from "./write-statements.js";
import { StoreOpenError } from "../store-open-error.js";

/** Options of `SqliteStore`. */
export interface SqliteStoreOptions {
  /** Folder holding `registry.db`; created if missing. */
  readonly dataDir: string;
  /**
   * `normal` (default): a commit survives a crash of the process.
   * `full`: each commit group is fsynced, so it also survives power loss.
   */
  readonly sync?: "normal" | "full";
  /** Changes kept for watchers to resume from. Default 10000. */
  readonly historyLimit?: number;
}

/** Database file name inside the data directory. */
export const DATABASE_FILE = "registry.db";

interface Pending {
  readonly mutation: Mutation;
  readonly resolve: (change: Change) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The embedded durable store (better-sqlite3, WAL). Commits are grouped: every
 * mutation that arrives in the same event-loop turn is written in one
 * transaction, and each is acknowledged only after that transaction commits.
 * The database is opened in exclusive locking mode, so a second registry
 * process cannot share (and corrupt the revisions of) one data directory.
 */
export class SqliteStore implements RegistryStore {
  readonly path: string;
  /** Transactions committed so far (each holds one or more mutations). */
  commitGroups = 0;
  private db: Database.Database | undefined;
  private state = new StoreStateMachine(0);
  private onChange: (change: Change) => void = () => {};
  private pending: Pending[] = [];
  private flushTimer: NodeJS.Immediate | undefined;
  private writeBatch: ((batch: readonly Pending[]) => (Change | Error)[]) | undefined;
  /** Each live instance's row key (its rowid): rows are found by it, so the table needs no index on the id. */
  private rowKeys = new Map<string, number>();

  constructor(private readonly options: SqliteStoreOptions) {
    const limit = options.historyLimit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new RangeError(`historyLimit must be an integer >= 1, not ${limit}`);
    this.path = resolve(options.dataDir, DATABASE_FILE);
  }

  async open(onChange: (change: Change) => void): Promise<StoreState> {
    this.onChange = onChange;
    const db = this.openDatabase();
    this.db = db;
    const meta = new Map(
      (db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]),
    );
    let epoch = meta.get("epoch");
    if (epoch === undefined) {
      epoch = randomUUID();
      db.prepare("INSERT INTO meta (key, value) VALUES ('epoch', ?), ('revision', '0')").run(epoch);
    }
    const share = stringSharer(); // one copy of each type, health path and health
    const rows = db.prepare(`SELECT ${INSTANCE_COLUMNS}, row_key FROM instances`).raw(true).all() as unknown[][];
    const instances = rows.map((values) => {
      const instance = fromInstanceValues(values, share);
      this.rowKeys.set(instance.id, values[ROW_KEY_COLUMN] as number);
      return instance;
    });
    const history = (db.prepare("SELECT revision, change FROM history ORDER BY revision").all() as {
      revision: number;
      change: string;
    }[]).map((r) => decodeChange(r.revision, r.change));
    // The newest history row holds the current revision; meta's is a marker (see prunesHistory).
    const revision = Math.max(Number(meta.get("revision") ?? 0), history.at(-1)?.revision ?? 0);
    const historyFloor = history.length > 0 ? (history[0] as Change).revision - 1 : revision;
    this.state = new StoreStateMachine(revision, instances);
    this.writeBatch = this.prepareWriter(db);
    return { epoch, revision, instances, history, historyFloor };
  }

  /** The durability settings in force, as SQLite reports them (for logs and tests). */
  durability(): { journalMode: string; synchronous: "off" | "normal" | "full" | "extra" } {
    if (!this.db) throw new Error("store is not open");
    const levels = ["off", "normal", "full", "extra"] as const;
    return {
      journalMode: this.db.pragma("journal_mode", { simple: true }) as string,
      synchronous: levels[this.db.pragma("synchronous", { simple: true }) as number] ?? "off",
    };
  }

  /**
   * Writes a consistent copy of the live database to `destination` (SQLite's
   * online backup, in steps, while the registry keeps serving). Pending
   * commits are flushed first, so everything acknowledged is in the copy.
   */
  async backup(destination: string): Promise<void> {
    if (!this.db) throw new Error("store is not open");
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flush();
    await this.db.backup(destination);
  }

  /**
   * Gives the data set a new epoch, so watchers holding revisions from before
   * a restore get RESET instead of a replay of a history that was rewound.
   * Run on a stopped registry's data directory, after restoring a backup.
   */
  rotateEpoch(): string {
    if (!this.db) throw new Error("store is not open");
    const epoch = randomUUID();
    this.db.prepare("UPDATE meta SET value = ? WHERE key = 'epoch'").run(epoch);
    return epoch;
  }

  commit(mutation: Mutation): Promise<Change> {
    if (!this.db) return Promise.reject(new RegistryError("unavailable", "store is closed"));
    return new Promise((resolve, reject) => {
      this.pending.push({ mutation, resolve, reject });
      this.flushTimer ??= setImmediate(() => this.flush());
    });
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flush();
    this.db?.close();
    this.db = undefined;
  }

  /** Writes every pending mutation in one transaction, then reports and acknowledges them. */
  private flush(): void {
    this.flushTimer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let results: (Change | Error)[];
    try {
      results = (this.writeBatch as NonNullable<typeof this.writeBatch>)(batch);
      this.state.commit();
      this.commitGroups++;
    } catch (err) {
      this.state.rollback();
      const failure = new RegistryError("unavailable", "the store could not persist the change", { cause: err });
      for (const p of batch) p.reject(failure);
      return;
    }
    batch.forEach((p, i) => {
      const result = results[i] as Change | Error;
      if (result instanceof Error) {
        p.reject(result);
        return;
      }
      this.onChange(result);
      p.resolve(result);
    });
  }

  private prepareWriter(db: Database.Database): (batch: readonly Pending[]) => (Change | Error)[] {
    const insertInstance = db.prepare(WRITE_SQL.insertInstance);
    const updateHealth = db.prepare(WRITE_SQL.updateHealth);
    const deleteInstance = db.prepare(WRITE_SQL.deleteInstance);
    const insertHistory = db.prepare(WRITE_SQL.insertHistory);
    const pruneHistory = db.prepare(WRITE_SQL.pruneHistory);
    const setRevision = db.prepare(WRITE_SQL.setRevision);
    const historyLimit = this.options.historyLimit ?? 10_000;
    const pruneEvery = Math.min(PRUNE_EVERY, historyLimit);

    const rowKeys = this.rowKeys;
    /** Row keys as they were before this transaction changed them, to put back if it fails. */
    let rowKeysBefore: [string, number | undefined][] = [];
    const setRowKey = (id: string, key: number | undefined): void => {
      rowKeysBefore.push([id, rowKeys.get(id)]);
      if (key === undefined) rowKeys.delete(id);
      else rowKeys.set(id, key);
    };
    const rowKeyOf = (id: string): number => {
      const key = rowKeys.get(id);
      if (key === undefined) throw new Error(`no row key for instance ${id}`); // the store's state and its rows disagree
      return key;
    };

    const write = (change: Change): void => {
      const { instance } = change;
      const row = toInstanceRow(instance as StoredInstance);
      if (change.kind === "registered") {
        // A register of a live id replaces it, as the state machine does.
        if (rowKeys.has(instance.id)) deleteInstance.run(rowKeyOf(instance.id));
        setRowKey(instance.id, Number(insertInstance.run(instanceRowValues(row)).lastInsertRowid));
      } else if (change.kind === "removed") {
        deleteInstance.run(rowKeyOf(instance.id));
        setRowKey(instance.id, undefined);
      } else {
        updateHealth.run(instance.health, instance.updatedAt, instance.revision, rowKeyOf(instance.id));
      }
      insertHistory.run(change.revision, encodeChange(change, row));
    };
    const transaction = db.transaction((batch: readonly Pending[]) => {
      const before = this.state.revision;
      const results = batch.map((p): Change | Error => {
        try {
          const change = this.state.apply(p.mutation);
          write(change);
          return change;
        } catch (err) {
          if (err instanceof RegistryError) return err; // this mutation fails, the batch goes on
          throw err;
        }
      });
      if (prunesHistory(before, this.state.revision, pruneEvery)) {
        pruneHistory.run(this.state.revision - historyLimit);
        setRevision.run(String(this.state.revision));
      }
      return results;
    });
    return (batch) => {
      rowKeysBefore = [];
      try {
        return transaction(batch);
      } catch (err) {
        for (const [id, key] of rowKeysBefore.reverse()) {
          if (key === undefined) rowKeys.delete(id);
          else rowKeys.set(id, key);
        }
        throw err;
      }
    };
  }

  private openDatabase(): Database.Database {
    const dir = resolve(this.options.dataDir);
    try {
      ensureDir(dir);
    } catch (err) {
      throw new StoreOpenError(`DATA_DIR ${dir} cannot be created: ${(err as Error).message}`);
    }
    let db: Database.Database;
    try {
      db = new Database(this.path);
    } catch (err) {
      throw new StoreOpenError(`${this.path} cannot be opened: ${(err as Error).message}`);
    }
    try {
      db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma(`synchronous = ${this.options.sync === "full" ? "FULL" : "NORMAL"}`);
      migrate(db, this.path);
      return db;
    } catch (err) {
      db.close();
      throw new StoreOpenError(describeOpenFailure(this.path, err));
    }
  }
}

function describeOpenFailure(path: string, err: unknown): string {
  if (err instanceof SchemaError) return err.message;
  const code = (err as { code?: string }).code ?? "";
  const message = (err as Error).message;
  if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT") {
    return `${path} is not a readable registry database (${message}); restore it from a backup or move it away (it was left untouched)`;
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return `${path} is in use by another registry process`;
  }
  if (code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_IOERR")) {
    return `${path} is not writable (${message})`;
  }
  return `${path}: ${message}`;
}
