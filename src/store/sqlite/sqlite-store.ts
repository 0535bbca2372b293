import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import Database from "better-sqlite3";
import type { Logger } from "pino";
import { ensureDir } from "../../util/ensure-dir.js";
import type { Change, StoredInstance } from "../../registry/types.js";
import { RegistryError } from "../../registry/registry-error.js";
import type { LocalStore, StoreState } from "../../registry/registry-store.js";
import { StoreOpenError } from "../store-open-error.js";
import { decodeChange, encodeChange, fromInstanceValues, instanceRowValues, LOADED_INSTANCE_COLUMNS, stringSharer, toInstanceRow } from "./row-codec.js";
import { migrate, SchemaError } from "./sqlite-schema.js";
import { PRUNE_EVERY, prunesHistory, WRITE_SQL } from "./write-statements.js";

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
  /** Where a data set started anew in an existing file is reported. Default: silent. */
  readonly logger?: Logger;
}

/** Database file name inside the data directory. */
export const DATABASE_FILE = "registry.db";

/**
 * The embedded durable store (better-sqlite3, WAL). Each batch of changes the
 * core planned is written in one transaction, and the core applies (and
 * acknowledges) them only after it commits. The database is opened in
 * exclusive locking mode, so a second registry process cannot share (and
 * corrupt the revisions of) one data directory.
 */
export class SqliteStore implements LocalStore {
  readonly plannedBy = "core";
  readonly path: string;
  /** Transactions committed so far (each holds one batch of changes). */
  commitGroups = 0;
  private db: Database.Database | undefined;
  private writeBatch: ((changes: readonly Change[]) => void) | undefined;

  constructor(private readonly options: SqliteStoreOptions) {
    const limit = options.historyLimit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new RangeError(`historyLimit must be an integer >= 1, not ${limit}`);
    this.path = resolve(options.dataDir, DATABASE_FILE);
  }

  async open(): Promise<StoreState> {
    // SQLite opens an existing empty file as a new database; remember that a
    // file was there, so a new data set started in it is not silent.
    const fileWasThere = existsSync(this.path);
    const db = this.openDatabase();
    try {
      const state = this.readState(db, fileWasThere);
      this.writeBatch = this.prepareWriter(db, state.revision);
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
   * online backup, in steps, while the registry keeps serving). Every
   * acknowledged change is committed, so it is in the copy.
   */
  async backup(destination: string): Promise<void> {
    if (!this.db) throw new Error("store is not open");
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

  async commitBatch(changes: readonly Change[]): Promise<void> {
    if (!this.writeBatch) throw new RegistryError("unavailable", "store is closed");
    try {
      this.writeBatch(changes);
    } catch (err) {
      throw new RegistryError("unavailable", "the store could not persist the change", { cause: err });
    }
    this.commitGroups++;
  }

  /**
   * Writes the time into meta's `write_check` row, a row no registry state
   * reads: a real write to the WAL, as a commit makes (SQLite writes nothing
   * for an update that changes no value).
   */
  async checkWritable(): Promise<void> {
    if (!this.db) throw new RegistryError("unavailable", "store is closed");
    this.db.prepare(WRITE_SQL.writeCheck).run(String(Date.now()));
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    this.writeBatch = undefined;
  }

  /** Reads every instance, in registration order. */
  private loadInstances(db: Database.Database): StoredInstance[] {
    const share = stringSharer(); // one copy of each type, health path and health
    const select = db.prepare(`SELECT ${LOADED_INSTANCE_COLUMNS}, rowid FROM instances ORDER BY rowid`).raw(true);
    const instances: StoredInstance[] = [];
    // Row by row rather than `all()`: each row's array is garbage
    // once its instance is built, instead of 100,000 of them outliving
    // scavenges that then copy them.
    for (const values of select.iterate() as IterableIterator<unknown[]>) {
      try {
        instances.push(fromInstanceValues(values, share));
      } catch (err) {
        // Not JSON.parse's message: it quotes the start of the metadata, which may hold what an operator would not print.
        const why = err instanceof SyntaxError ? "its metadata is not valid JSON" : (err as Error).message;
        throw new Error(`instances row ${String(values.at(-1))} (instance ${String(values[0])}) cannot be read (${why}); restore a backup, or delete or mend that row`);
      }
    }
    return instances;
  }

  /** The one transaction a batch is written in: its instance rows, its history rows, and now and then a prune. */
  private prepareWriter(db: Database.Database, revision: number): (changes: readonly Change[]) => void {
    const insertInstance = db.prepare(WRITE_SQL.insertInstance);
    const updateHealth = db.prepare(WRITE_SQL.updateHealth);
    const deleteInstance = db.prepare(WRITE_SQL.deleteInstance);
    const insertHistory = db.prepare(WRITE_SQL.insertHistory);
    const pruneHistory = db.prepare(WRITE_SQL.pruneHistory);
    const setRevision = db.prepare(WRITE_SQL.setRevision);
    const historyLimit = this.options.historyLimit ?? 10_000;
    const pruneEvery = Math.min(PRUNE_EVERY, historyLimit);
    let written = revision;

    const write = (change: Change): void => {
      const { instance } = change;
      const row = toInstanceRow(instance as StoredInstance);
      if (change.kind === "registered") insertInstance.run(instanceRowValues(row));
      else if (change.kind === "removed") deleteInstance.run(instance.id);
      else updateHealth.run(instance.health, instance.updatedAt, instance.revision, instance.drainingSince, instance.id);
      insertHistory.run(change.revision, encodeChange(change, row));
    };
    const transaction = db.transaction((changes: readonly Change[]) => {
      for (const change of changes) write(change);
      const last = (changes.at(-1) as Change).revision;
      if (prunesHistory(written, last, pruneEvery)) {
        pruneHistory.run(last - historyLimit);
        setRevision.run(String(last));
      }
      return last;
    });
    return (changes) => {
      if (changes.length === 0) return;
      written = transaction(changes); // throws, rolled back, when SQLite cannot write
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
