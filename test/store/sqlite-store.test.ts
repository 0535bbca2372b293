import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { Change } from "../../src/registry/types.js";
import { SCHEMA_VERSION } from "../../src/store/sqlite/sqlite-schema.js";
import { DATABASE_FILE, SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { StoreOpenError } from "../../src/store/store-open-error.js";
import { tempDataDir } from "../support/server-process.js";
import { dataDirWith, dataDirWithRepeatedRow, editDatabase } from "../support/sqlite-data.js";

const silent = pino({ level: "silent" });

/**
 * Rebuilds the instances table as schema versions 1 and 2 had it, keyed by
 * the id's text (rows inserted newest first, so rowids differ from the
 * current file's).
 */
const KEYED_BY_ID = `
  CREATE TABLE instances_v2 (
    id TEXT PRIMARY KEY, service_type TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
    metadata TEXT NOT NULL, health_check_path TEXT NOT NULL, health TEXT NOT NULL,
    registered_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, revision INTEGER NOT NULL, token_hash BLOB NOT NULL
  ) STRICT;
  INSERT INTO instances_v2 SELECT id, service_type, host, port, metadata, health_check_path, health,
    registered_at, updated_at, revision, token_hash FROM instances ORDER BY revision DESC;
  DROP TABLE instances;
  ALTER TABLE instances_v2 RENAME TO instances;
`;

describe("SqliteStore", () => {
  const open: (SqliteStore | ServiceRegistry)[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  function registry(dataDir: string, options: { historySize?: number } = {}): ServiceRegistry {
    const r = new ServiceRegistry({
      store: new SqliteStore({ dataDir, historyLimit: options.historySize ?? 10_000 }),
      healthChecks: false,
      logger: silent,
      ...options,
    });
    open.push(r);
    return r;
  }

  async function reopen(r: ServiceRegistry, dataDir: string, options: { historySize?: number } = {}) {
    await r.close();
    const next = registry(dataDir, options);
    await next.start();
    return next;
  }

  it("keeps instances, tokens, revisions, the epoch and history across a restart", async () => {
    const dir = tempDataDir();
    const r1 = registry(dir);
    await r1.start();
    const a = await r1.register({ serviceType: "api", host: "10.0.0.1", port: 80, metadata: { zone: "a" } });
    const b = await r1.register({ serviceType: "api", host: "10.0.0.2", port: 80, healthCheckPath: "/ready" });
    await r1.unregister(a.instance.id);
    const epoch = r1.epoch;

    const r2 = await reopen(r1, dir);
    expect(r2.epoch).toBe(epoch);
    expect(r2.revision).toBe(3);
    expect(r2.getByType("api", true).instances).toEqual([expect.objectContaining({ id: b.instance.id, healthCheckPath: "/ready" })]);
    expect(r2.authenticate(b.instance.id, b.token).id).toBe(b.instance.id);
    expect(() => r2.authenticate(a.instance.id, a.token)).toThrow(/invalid instance credentials/);
    const c = await r2.register({ serviceType: "db", host: "10.0.0.3", port: 5432 });
    expect(c.instance.revision).toBe(4);

    // A watcher resuming from before the restart gets exactly what it missed.
    const watcher = r2.watch({ serviceType: "", sinceRevision: 1, epoch, everyHealthCheck: false });
    const got: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { value } = await watcher.next();
      expect(value.type).toBe("change");
      got.push((value as { change: Change }).change.revision);
    }
    expect(got).toEqual([2, 3, 4]);
    watcher.end();
  });

  it("commits writes of one event-loop turn in one transaction", async () => {
    const dir = tempDataDir();
    const store = new SqliteStore({ dataDir: dir });
    const r = new ServiceRegistry({ store, healthChecks: false, logger: silent });
    open.push(r);
    await r.start();
    const before = store.commitGroups;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => r.register({ serviceType: "api", host: "10.0.0.1", port: 1000 + i })),
    );
    expect(store.commitGroups - before).toBe(1);
    expect(results.map((x) => x.instance.revision)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await r.register({ serviceType: "api", host: "10.0.0.1", port: 2000 });
    expect(store.commitGroups - before).toBe(2);
  });

  it("checkWritable makes a real write (the WAL grows) that changes no registry state, and rejects once closed", async () => {
    const dir = tempDataDir();
    const store = new SqliteStore({ dataDir: dir });
    const r = new ServiceRegistry({ store, healthChecks: false, logger: silent });
    open.push(r);
    await r.start();
    const { instance } = await r.register({ serviceType: "api", host: "10.0.0.1", port: 1000 });
    const wal = () => statSync(join(dir, `${DATABASE_FILE}-wal`)).size;
    const before = wal();
    await store.checkWritable();
    expect(wal()).toBeGreaterThan(before);
    await store.checkWritable(); // its row is written again, not added
    await r.close();
    await expect(store.checkWritable()).rejects.toThrow(/store is closed/);

    const again = await reopen(r, dir);
    expect(again.revision).toBe(instance.revision);
    expect(again.getByType("api").instances.map((i) => i.port)).toEqual([1000]);
  });

  it("rejects a bad mutation without failing the rest of its group", async () => {
    const dir = tempDataDir();
    const r = registry(dir);
    await r.start();
    const [ok, missing, ok2] = await Promise.allSettled([
      r.register({ serviceType: "api", host: "10.0.0.1", port: 1 }),
      r.unregister("no-such-id"),
      r.register({ serviceType: "api", host: "10.0.0.1", port: 2 }),
    ]);
    expect(ok.status).toBe("fulfilled");
    expect(missing).toMatchObject({ status: "rejected", reason: { code: "not_found" } });
    expect(ok2.status).toBe("fulfilled");
    const r2 = await reopen(r, dir);
    expect(r2.revision).toBe(2);
    expect(r2.size).toBe(2);
  });

  it("resumes from the last HISTORY_SIZE changes after a restart, and RESETs from before them", async () => {
    const dir = tempDataDir();
    const r = registry(dir, { historySize: 5 });
    await r.start();
    for (let i = 0; i < 8; i++) await r.register({ serviceType: "api", host: "10.0.0.1", port: 100 + i });
    const epoch = r.epoch;
    const r2 = await reopen(r, dir, { historySize: 5 });
    // Revisions 4..8 are kept: resuming from 3 works, from 2 is a RESET.
    const resumed = r2.watch({ serviceType: "", sinceRevision: 3, epoch, everyHealthCheck: false });
    expect((await resumed.next()).value).toMatchObject({ type: "change", change: { revision: 4 } });
    resumed.end();
    const tooOld = r2.watch({ serviceType: "", sinceRevision: 2, epoch, everyHealthCheck: false });
    expect((await tooOld.next()).value).toMatchObject({ type: "reset" });
    tooOld.end();
  });

  it("prunes the history table in chunks: never below the limit, never past twice it, the newest row always kept", async () => {
    const dir = tempDataDir();
    const store = new SqliteStore({ dataDir: dir, historyLimit: 5 });
    const r = new ServiceRegistry({ store, healthChecks: false, logger: silent, historySize: 5 });
    open.push(r);
    await r.start();
    const historyRows = async (): Promise<{ rows: number; oldest: number; newest: number }> => {
      const copy = join(tempDataDir(), "copy.db"); // the store holds its file in exclusive mode
      await store.backup(copy);
      const db = new Database(copy, { readonly: true });
      const history = db.prepare("SELECT count(*) AS rows, min(revision) AS oldest, max(revision) AS newest FROM history").get();
      db.close();
      return history as { rows: number; oldest: number; newest: number };
    };
    const registerOne = (port: number) => r.register({ serviceType: "api", host: "10.0.0.1", port });
    for (let i = 1; i <= 3; i++) await registerOne(i);
    // One commit of four, crossing revision 5: a prune to the limit.
    await Promise.all([4, 5, 6, 7].map(registerOne));
    expect(await historyRows()).toEqual({ rows: 5, oldest: 3, newest: 7 });
    // Single commits up to 14: no prune until 10 is crossed, then one.
    for (let i = 8; i <= 14; i++) await registerOne(i);
    expect(await historyRows()).toEqual({ rows: 9, oldest: 6, newest: 14 });
  });

  it("migrates a version 2 database, whose instances table is keyed by id, keeping every instance", async () => {
    const dir = tempDataDir();
    const r1 = registry(dir);
    await r1.start();
    const kept = await r1.register({ serviceType: "api", host: "10.0.0.1", port: 80, metadata: { zone: "a" } });
    const gone = await r1.register({ serviceType: "api", host: "10.0.0.2", port: 80 });
    await r1.close();
    // The file as a version 2 build left it: the table keyed by the id's text.
    const db = new Database(join(dir, DATABASE_FILE));
    db.exec(KEYED_BY_ID);
    db.pragma("user_version = 2");
    db.close();

    const r2 = registry(dir);
    await r2.start();
    // The rebuilt table went through the WAL, which is checkpointed and emptied after the upgrade.
    expect(statSync(join(dir, `${DATABASE_FILE}-wal`)).size).toBe(0);
    expect(r2.getByType("api", true).instances.map((i) => i.id).sort()).toEqual([kept.instance.id, gone.instance.id].sort());
    expect(r2.authenticate(kept.instance.id, kept.token).metadata).toEqual({ zone: "a" });
    await r2.unregister(gone.instance.id);
    await r2.register({ serviceType: "api", host: "10.0.0.3", port: 80 });
    const r3 = await reopen(r2, dir);
    expect(r3.getByType("api", true).instances.map((i) => i.host).sort()).toEqual(["10.0.0.1", "10.0.0.3"]);
    await r3.close();
    const after = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(after.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    // Since v5 the table is keyed by the id again: the id's unique index is how a row is found.
    expect(after.prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'instances'").pluck().all()).toEqual(["instances", "sqlite_autoindex_instances_1"]);
    after.close();
  });

  it("refuses a history limit below 1: the newest history row holds the revision", () => {
    expect(() => new SqliteStore({ dataDir: tempDataDir(), historyLimit: 0 })).toThrow(/historyLimit must be an integer >= 1, not 0/);
  });

  it("opens a version 1 database, whose revision is meta's, and continues from it", async () => {
    const dir = tempDataDir();
    const r1 = registry(dir);
    await r1.start();
    for (let i = 0; i < 3; i++) await r1.register({ serviceType: "api", host: "10.0.0.1", port: 100 + i });
    await r1.close();
    // As a v1 build could leave it: schema version 1, revision 12 in meta, its
    // history pruned to nothing (v1 read the revision from meta alone).
    const db = new Database(join(dir, DATABASE_FILE));
    db.exec(KEYED_BY_ID);
    db.prepare("UPDATE meta SET value = '12' WHERE key = 'revision'").run();
    db.prepare("DELETE FROM history").run();
    db.pragma("user_version = 1");
    db.close();
    const r2 = registry(dir);
    await r2.start();
    expect(r2.revision).toBe(12);
    expect(r2.size).toBe(3);
    expect((await r2.register({ serviceType: "api", host: "10.0.0.1", port: 200 })).instance.revision).toBe(13);
    await r2.close();
    const after = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(after.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    after.close();
  });

  it.each([
    [undefined, "normal"],
    ["normal", "normal"],
    ["full", "full"],
  ] as const)("opens in WAL mode with STORE_SYNC=%s as synchronous=%s", async (sync, expected) => {
    const store = new SqliteStore({ dataDir: tempDataDir(), ...(sync ? { sync } : {}) });
    open.push(store);
    await store.open();
    expect(store.durability()).toEqual({ journalMode: "wal", synchronous: expected });
  });

  it("refuses a second process on the same data directory", async () => {
    const dir = tempDataDir();
    const first = new SqliteStore({ dataDir: dir });
    open.push(first);
    await first.open();
    const second = new SqliteStore({ dataDir: dir });
    await expect(second.open()).rejects.toThrow(/in use by another registry process/);
  });

  it("refuses a corrupt database file, naming it, and leaves it untouched", async () => {
    const dir = tempDataDir();
    const garbage = Buffer.from("this is not an sqlite database, just some bytes ".repeat(200));
    writeFileSync(join(dir, DATABASE_FILE), garbage);
    const store = new SqliteStore({ dataDir: dir });
    const err = await store.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreOpenError);
    expect((err as Error).message).toContain(join(dir, DATABASE_FILE));
    expect((err as Error).message).toMatch(/not a readable registry database/);
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(join(dir, DATABASE_FILE)).equals(garbage)).toBe(true);
  });

  it("refuses a row it cannot read, naming the file and the row, and lets go of the file", async () => {
    const dir = await dataDirWith(
      `INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
         VALUES ('good', 'api', '10.0.0.1', 80, '{}', '/health', 'healthy', 1, 1, 1, zeroblob(32)),
                ('bad', 'api', '10.0.0.2', 80, '{"pin": p4ssw0rd}', '/health', 'healthy', 1, 1, 2, zeroblob(32));`,
    );
    const err = await new SqliteStore({ dataDir: dir }).open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreOpenError);
    expect((err as Error).message).toContain(join(dir, DATABASE_FILE));
    expect((err as Error).message).toMatch(/instances row 2 \(instance bad\) cannot be read \(its metadata is not valid JSON\)/);
    expect((err as Error).message).not.toContain("p4ssw0rd"); // JSON.parse's own message would quote it
    // The failed open let go of the file (the row was read mid-iteration): it can be mended and opened.
    editDatabase(dir, `UPDATE instances SET metadata = '{"zone":"eu"}' WHERE id = 'bad'`);
    const store = new SqliteStore({ dataDir: dir });
    const state = await store.open();
    expect(state.instances.map((i) => [i.id, i.metadata])).toEqual([["good", {}], ["bad", { zone: "eu" }]]);
    await store.close();
  });

  it("refuses a database from a newer schema version, naming it", async () => {
    const dir = tempDataDir();
    const db = new Database(join(dir, DATABASE_FILE));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await expect(new SqliteStore({ dataDir: dir }).open()).rejects.toThrow(
      new RegExp(`${DATABASE_FILE} has schema version ${SCHEMA_VERSION + 1}, newer than this build supports`),
    );
  });

  it("migrates a schema-v4 file holding an id in two rows to one row per id, keeping the newest", async () => {
    const dir = await dataDirWithRepeatedRow();
    const store = new SqliteStore({ dataDir: dir });
    open.push(store);
    const state = await store.open();
    expect(state.instances.map((i) => [i.id, i.host, i.revision])).toEqual([["x", "10.0.0.1", 1]]);
    await store.close();
    open.pop();
    const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(db.prepare("SELECT count(*) AS n FROM instances").get()).toEqual({ n: 1 });
    db.close();
  });

  it("migrates an empty database up to the current schema version", async () => {
    const dir = tempDataDir();
    new Database(join(dir, DATABASE_FILE)).close(); // version 0
    const store = new SqliteStore({ dataDir: dir });
    open.push(store);
    await store.open();
    await store.close();
    open.pop();
    const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it.each([
    ["a path under a regular file", (dir: string) => {
      writeFileSync(join(dir, "file"), "x");
      return join(dir, "file", "data");
    }],
    ["a database path taken by a directory", (dir: string) => {
      mkdirSync(join(dir, DATABASE_FILE));
      return dir;
    }],
    ["a path in /proc", () => "/proc/registry-test-data"],
  ])("refuses an unwritable data directory (%s), naming it", async (_, make) => {
    const dataDir = make(tempDataDir());
    const err = await new SqliteStore({ dataDir }).open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreOpenError);
    expect((err as Error).message).toContain(dataDir);
  });
});

describe("an empty registry.db", () => {
  it("starts a new data set with a warning naming the file, not silently", async () => {
    const dir = tempDataDir();
    const file = join(dir, DATABASE_FILE);
    writeFileSync(file, ""); // what a truncated copy or a botched restore leaves
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const r = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir, logger }), healthChecks: false, logger: silent });
    await r.start();
    try {
      const warnings = lines.filter((l) => l.level === 40);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ file });
      expect(String(warnings[0]?.msg)).toContain(file);
      expect(String(warnings[0]?.msg)).toMatch(/new epoch/);
    } finally {
      await r.close();
    }

    // Once it holds the data set it started, a restart is quiet again.
    lines.length = 0;
    const again = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir, logger }), healthChecks: false, logger: silent });
    await again.start();
    await again.close();
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });

  it("a fresh data directory (no file yet) starts without that warning", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const r = new ServiceRegistry({ store: new SqliteStore({ dataDir: tempDataDir(), logger }), healthChecks: false, logger: silent });
    await r.start();
    await r.close();
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });
});

describe("restoring a backup", () => {
  it("rotate-epoch gives the data a new epoch, so old resume points get RESET", async () => {
    const dir = tempDataDir();
    const store = new SqliteStore({ dataDir: dir });
    const r = new ServiceRegistry({ store, healthChecks: false, logger: silent });
    await r.start();
    await r.register({ serviceType: "api", host: "10.0.0.1", port: 80 });
    const oldEpoch = r.epoch;
    await r.close();

    const { runCli } = await import("../support/server-process.js");
    const out = await runCli(["rotate-epoch", "--data-dir", dir]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/new epoch/);

    const r2 = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir }), healthChecks: false, logger: silent });
    await r2.start();
    try {
      expect(r2.epoch).not.toBe(oldEpoch);
      expect(r2.size).toBe(1);
      const w = r2.watch({ serviceType: "", sinceRevision: 1, epoch: oldEpoch, everyHealthCheck: false });
      expect((await w.next()).value).toMatchObject({ type: "reset" });
      w.end();
    } finally {
      await r2.close();
    }
  });
});
