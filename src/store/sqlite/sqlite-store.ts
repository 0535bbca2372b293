import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import Database from "better-sqlite3";
import type { Logger } from "pino";
import { RegistryError } from "../../registry/registry-error.js";
import { ensureDir } from "../../util/ensure-dir.js";
import type { Change, StoredInstance } from "../../registry/types.js";
import type { Mutation, RegistryStore, StoreState } from "../../registry/registry-store.js";
import { StoreStateMachine } from "../state-machine.js";
import { StoreOpenError } from "../store-open-error.js";
import { decodeChange, encodeChange, fromInstanceValues, type InstanceRow, instanceRowValues, LOADED_INSTANCE_COLUMNS, stringSharer, toInstanceRow } from "./row-codec.js";
import { RowKeyMap } from "./row-key-map.js";
import { migrate, SchemaError } from "./sqlite-schema.js";
import { PRUNE_EVERY, prunesHistory, WRITE_SQL } from "./write-statements.js";

/** Where `row_key` is in a row read as `SELECT ${LOADED_INSTANCE_COLUMNS}, row_key`. */
const ROW_KEY_COLUMN = LOADED_INSTANCE_COLUMNS.split(",").length;
/** A row key no row has (SQLite gives 1 and up), for an id the map does not hold. */
const NO_ROW = 0;

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
  /** Where repairs of the instances table are reported. Default: silent. */
  readonly logger?: Logger;
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
  /**
   * Rows of the instances table found out of step with the instances in
   * memory and rewritten (a bug if ever above 0; each is logged).
   */
  repairedRows = 0;
  private rowKeys = new RowKeyMap();

  constructor(private readonly options: SqliteStoreOptions) {
    const limit = options.historyLimit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new RangeError(`historyLimit must be an integer >= 1, not ${limit}`);
    this.path = resolve(options.dataDir, DATABASE_FILE);
  }

  async open(onChange: (change: Change) => void): Promise<StoreState> {
    this.onChange = onChange;
    // SQLite opens an existing empty file as a new database; remember that a
    // file was there, so a new data set started in it is not silent.
    const fileWasThere = existsSync(this.path);
    const db = this.openDatabase();
    try {
      const state = this.readState(db, fileWasThere);
      this.writeBatch = this.prepareWriter(db);
      this.db = db;
      return state;
    } catch (err) {
      db.close(); // releases the exclusive lock
      throw new StoreOpenError(describeOpenFailure(this.path, err));
    }
  }

  /** Everything the registry starts from: epoch, revision, instances, history. */
  private readState(db: Database.Database, fileWasThere: boolean): StoreState {
    const meta = new Map(
      (db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]),
    );
    let epoch = meta.get("epoch");
    if (epoch === undefined) {
      epoch = randomUUID();
      db.prepare("INSERT INTO meta (key, value) VALUES ('epoch', ?), ('revision', '0')").run(epoch);
      // A file with no data set is most often a truncated copy or a restore
      // that went wrong: the operator should hear that every instance is
      // gone and that watchers will be RESET, not find out from clients.
      if (fileWasThere) {
        this.options.logger?.warn(
          { file: this.path, epoch },
          `${this.path} existed but held no data set (empty file?): starting a new data set with a new epoch; restore a backup if it should have held instances`,
        );
      }
    }
    const instances = this.loadInstances(db);
    const history = (db.prepare("SELECT revision, change FROM history ORDER BY revision").all() as {
      revision: number;
      change: string;
    }[]).map((r) => decodeChange(r.revision, r.change));
    // The newest history row holds the current revision; meta's is a marker
    // (see prunesHistory). No instance can be newer, unless the file was
    // edited by hand: then revisions go on from that instance's, never back.
    let revision = Math.max(Number(meta.get("revision") ?? 0), history.at(-1)?.revision ?? 0);
    for (const instance of instances) if (instance.revision > revision) revision = instance.revision;
    const historyFloor = history.length > 0 ? (history[0] as Change).revision - 1 : revision;
    this.state = new StoreStateMachine(revision, instances);
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

  /** Reads every instance and its row key. */
  private loadInstances(db: Database.Database): StoredInstance[] {
    this.rowKeys = new RowKeyMap();
    const share = stringSharer(); // one copy of each type, health path and health
    const select = db.prepare(`SELECT ${LOADED_INSTANCE_COLUMNS}, row_key FROM instances ORDER BY row_key`).raw(true);
    const instances: StoredInstance[] = [];
    const keys: number[] = [];
    // Row by row rather than `all()`: each row's array is garbage
    // once its instance is built, instead of 100,000 of them outliving
    // scavenges that then copy them.
    for (const values of select.iterate() as IterableIterator<unknown[]>) {
      const key = values[ROW_KEY_COLUMN] as number;
      let instance: StoredInstance;
      try {
        instance = fromInstanceValues(values, share);
      } catch (err) {
        // Not JSON.parse's message: it quotes the start of the metadata, which may hold what an operator would not print.
        const why = err instanceof SyntaxError ? "its metadata is not valid JSON" : (err as Error).message;
        throw new Error(`instances row ${key} (instance ${String(values[0])}) cannot be read (${why}); restore a backup, or delete or mend that row`);
      }
      this.rowKeys.load(instance.id, key);
      instances.push(instance);
      keys.push(key);
    }
    return this.rowKeys.size === instances.length ? instances : this.dropRepeatedRows(db, keys, instances);
  }

  /**
   * The table does not enforce one row per id (an index would cost every
   * registration a second B-tree). Should a file hold more (edited by hand,
   * or a bug), each id's newest row (highest revision; of equal ones, the
   * last written) is kept and the others are deleted, so every id has the
   * one row its row key finds. `keys` are the instances' row keys, in order.
   */
  private dropRepeatedRows(db: Database.Database, keys: readonly number[], instances: StoredInstance[]): StoredInstance[] {
    const newest = new Map<string, number>(); // id -> index of its newest row
    instances.forEach((instance, i) => {
      const kept = newest.get(instance.id);
      if (kept === undefined || instance.revision >= (instances[kept] as StoredInstance).revision) newest.set(instance.id, i);
    });
    const keep = new Set(newest.values());
    const extra = instances.flatMap((instance, i) => (keep.has(i) ? [] : [{ id: instance.id, key: keys[i] as number }]));
    const deleteInstance = db.prepare(WRITE_SQL.deleteInstance);
    db.transaction(() => extra.forEach((row) => deleteInstance.run(row.key, row.id)))();
    // Every id is in the map already, with its last row's key: point it at the row kept.
    for (const i of keep) this.rowKeys.load((instances[i] as StoredInstance).id, keys[i] as number);
    this.repairedRows += extra.length;
    this.options.logger?.warn(
      { file: this.path, rows: extra.length, instanceIds: [...new Set(extra.map((row) => row.id))].slice(0, 10) },
      "deleted instance rows repeating an id; each id's newest row is kept",
    );
    return [...keep].map((i) => instances[i] as StoredInstance);
  }

  private prepareWriter(db: Database.Database): (batch: readonly Pending[]) => (Change | Error)[] {
    const insertInstance = db.prepare(WRITE_SQL.insertInstance);
    const updateHealth = db.prepare(WRITE_SQL.updateHealth);
    const deleteInstance = db.prepare(WRITE_SQL.deleteInstance);
    const deleteInstanceRows = db.prepare(WRITE_SQL.deleteInstanceRows);
    const insertHistory = db.prepare(WRITE_SQL.insertHistory);
    const pruneHistory = db.prepare(WRITE_SQL.pruneHistory);
    const setRevision = db.prepare(WRITE_SQL.setRevision);
    const historyLimit = this.options.historyLimit ?? 10_000;
    const pruneEvery = Math.min(PRUNE_EVERY, historyLimit);

    const rowKeys = this.rowKeys;
    /** Ids repaired in the open transaction: counted and logged once it commits. */
    let repaired: string[] = [];
    /**
     * The row key in memory did not find the id's row: the map and the table
     * are out of step, which is a bug. The table is put right rather than the
     * change refused (the instances in memory already hold it): every row of
     * the id goes, found by a scan, and the caller writes the row afresh
     * unless the change removes it.
     */
    const repair = (id: string): void => {
      deleteInstanceRows.run(id);
      rowKeys.delete(id);
      repaired.push(id);
    };
    const insertRow = (row: InstanceRow): void => {
      rowKeys.set(row.id, Number(insertInstance.run(instanceRowValues(row)).lastInsertRowid));
    };
    const deleteRow = (id: string): void => {
      const key = rowKeys.get(id);
      if (key !== undefined && deleteInstance.run(key, id).changes === 1) rowKeys.delete(id);
      else repair(id);
    };

    const write = (change: Change): void => {
      const { instance } = change;
      const row = toInstanceRow(instance as StoredInstance);
      if (change.kind === "registered") {
        // A register of a live id replaces its row, as the state machine replaces the instance.
        if (rowKeys.get(instance.id) !== undefined) deleteRow(instance.id);
        insertRow(row);
      } else if (change.kind === "removed") {
        deleteRow(instance.id);
      } else if (updateHealth.run(instance.health, instance.updatedAt, instance.revision, rowKeys.get(instance.id) ?? NO_ROW, instance.id).changes !== 1) {
        // (An id the map does not hold binds NO_ROW, which no row has: the update misses and repairs.)
        repair(instance.id);
        insertRow(row);
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
      try {
        const results = transaction(batch);
        rowKeys.commit();
        for (const id of repaired) {
          this.repairedRows++;
          this.options.logger?.warn({ file: this.path, instanceId: id }, "an instance's row was not where its row key said; repaired it");
        }
        return results;
      } catch (err) {
        rowKeys.rollback(); // SQLite rolled the rows back, repairs included
        throw err;
      } finally {
        repaired = [];
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
      // A migration that rebuilt a table wrote it through the WAL, which
      // would otherwise stay that size until the process stops.
      if (migrate(db, this.path) > 0) db.pragma("wal_checkpoint(TRUNCATE)");
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
