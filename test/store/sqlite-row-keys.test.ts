import { Writable } from "node:stream";
import { join } from "node:path";
import Database from "better-sqlite3";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { StoredInstance } from "../../src/registry/types.js";
import { RowKeyMap } from "../../src/store/sqlite/row-key-map.js";
import { DATABASE_FILE, SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { StoreOpenError } from "../../src/store/store-open-error.js";
import { runCli, tempDataDir } from "../support/server-process.js";
import { dataDirWith, dataDirWithRepeatedRow, editDatabase } from "../support/sqlite-data.js";

/** A write SQLite refuses (an instance at 10.9.9.9), failing the transaction it is in. */
const REFUSE_TRIGGER = "CREATE TRIGGER refuse BEFORE INSERT ON instances WHEN NEW.host = '10.9.9.9' BEGIN SELECT RAISE(ABORT, 'refused'); END;";

/** The SQLite store finds each instance's row by the row key it keeps in memory; these show the keys stay right. */
describe("SqliteStore row keys", () => {
  const open: SqliteStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  function instance(id: string, host = "10.0.0.1", port = 80): Omit<StoredInstance, "revision"> {
    return {
      id, serviceType: "api", host, port, metadata: {}, healthCheckPath: "/health",
      health: "healthy", registeredAt: 1, updatedAt: 1, tokenHash: "h".repeat(32),
    };
  }

  /** Log lines the store writes, parsed. */
  function capturedLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
        done();
      },
    });
    return { logger: pino({ level: "warn" }, sink), lines };
  }

  async function openStore(dir: string, logger?: pino.Logger): Promise<{ store: SqliteStore; instances: StoredInstance[] }> {
    const store = new SqliteStore({ dataDir: dir, ...(logger ? { logger } : {}) });
    open.push(store);
    const state = await store.open(() => {});
    return { store, instances: [...state.instances] };
  }

  async function closeStore(store: SqliteStore): Promise<void> {
    open.splice(open.indexOf(store), 1);
    await store.close();
  }

  /** The instances table's rows as [id, host, health], read from the file of a closed store. */
  function rowsOnDisk(dir: string): [string, string, string][] {
    const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
    try {
      return db.prepare("SELECT id, host, health FROM instances ORDER BY row_key").raw(true).all() as [string, string, string][];
    } finally {
      db.close();
    }
  }

  it("finds each row by its row key: health changes and removals reach the right row after a restart", async () => {
    const dir = tempDataDir();
    const first = await openStore(dir);
    for (const id of ["a", "b", "c"]) await first.store.commit({ op: "register", instance: instance(id) });
    await first.store.commit({ op: "remove", id: "a", reason: "unregistered", at: 2 });
    await closeStore(first.store);

    const second = await openStore(dir);
    await second.store.commit({ op: "setHealth", id: "c", health: "unhealthy", at: 3, failureReason: "HTTP 503" });
    await second.store.commit({ op: "remove", id: "b", reason: "health_check_expired", at: 4 });
    await second.store.commit({ op: "register", instance: instance("d") });
    expect(second.store.repairedRows).toBe(0);
    await closeStore(second.store);

    const third = await openStore(dir);
    expect(third.instances.map((i) => [i.id, i.health, i.revision])).toEqual([
      ["c", "unhealthy", 5],
      ["d", "healthy", 7],
    ]);
  });

  it("replaces the row of a live id registered again: one row, the newer one", async () => {
    const dir = tempDataDir();
    const { store } = await openStore(dir);
    await store.commit({ op: "register", instance: instance("x", "10.0.0.1") });
    await store.commit({ op: "register", instance: instance("x", "10.0.0.2") });
    await store.commit({ op: "setHealth", id: "x", health: "unhealthy", at: 2 });
    expect(store.repairedRows).toBe(0);
    await closeStore(store);
    expect(rowsOnDisk(dir)).toEqual([["x", "10.0.0.2", "unhealthy"]]);
    expect((await openStore(dir)).instances.map((i) => [i.id, i.host, i.revision])).toEqual([["x", "10.0.0.2", 3]]);
  });

  it("forgets a removed instance's row key: the id registered again gets a row of its own", async () => {
    const dir = tempDataDir();
    const { store } = await openStore(dir);
    await store.commit({ op: "register", instance: instance("x", "10.0.0.1") });
    await store.commit({ op: "remove", id: "x", reason: "unregistered", at: 2 });
    await store.commit({ op: "register", instance: instance("x", "10.0.0.3") });
    expect(store.repairedRows).toBe(0);
    await closeStore(store);
    expect(rowsOnDisk(dir)).toEqual([["x", "10.0.0.3", "healthy"]]);
  });

  it("undoes a transaction that fails as a whole, row keys included, and goes on", async () => {
    const dir = await dataDirWith(REFUSE_TRIGGER);
    const { store } = await openStore(dir);
    await store.commit({ op: "register", instance: instance("x") });
    await store.commit({ op: "register", instance: instance("w") });

    // One turn, one transaction, x's row key changed twice (replaced, then
    // gone) and w's once, then a refused registration fails it all.
    const failed = await Promise.allSettled([
      store.commit({ op: "register", instance: instance("x", "10.0.0.5") }),
      store.commit({ op: "remove", id: "x", reason: "unregistered", at: 2 }),
      store.commit({ op: "remove", id: "w", reason: "unregistered", at: 2 }),
      store.commit({ op: "register", instance: instance("y", "10.9.9.9") }),
    ]);
    expect(failed.map((f) => f.status)).toEqual(["rejected", "rejected", "rejected", "rejected"]);
    expect(failed[0]).toMatchObject({ reason: { code: "unavailable", message: "the store could not persist the change" } });

    // x and w are still there, in memory and in their rows, found by their keys.
    await expect(store.commit({ op: "setHealth", id: "x", health: "unhealthy", at: 3 })).resolves.toMatchObject({ revision: 3 });
    await expect(store.commit({ op: "setHealth", id: "w", health: "unhealthy", at: 3 })).resolves.toMatchObject({ revision: 4 });
    await expect(store.commit({ op: "register", instance: instance("z") })).resolves.toMatchObject({ revision: 5 });
    await expect(store.commit({ op: "remove", id: "w", reason: "unregistered", at: 4 })).resolves.toMatchObject({ revision: 6 });
    expect(store.repairedRows).toBe(0);
    await closeStore(store);
    expect(rowsOnDisk(dir)).toEqual([
      ["x", "10.0.0.1", "unhealthy"],
      ["z", "10.0.0.1", "healthy"],
    ]);
  });

  it("rewrites a row its row key no longer finds, never touching the row the key finds instead, and logs it", async () => {
    // Puts the row of 'other' where SQLite said a new row went, and that row
    // elsewhere: the keys in memory and the table are out of step, as a bug
    // could leave them, and a stale key finds another instance's row.
    const dir = await dataDirWith(
      "CREATE TRIGGER move AFTER INSERT ON instances WHEN NEW.host = '10.8.8.8' BEGIN " +
        "UPDATE instances SET row_key = NEW.row_key + 1000 WHERE row_key = NEW.row_key; " +
        "UPDATE instances SET row_key = NEW.row_key WHERE id = 'other'; END;",
    );
    const { logger, lines } = capturedLogger();
    const { store } = await openStore(dir, logger);
    await store.commit({ op: "register", instance: instance("other") });
    await store.commit({ op: "register", instance: instance("moved", "10.8.8.8") });

    await store.commit({ op: "setHealth", id: "moved", health: "unhealthy", at: 2 });
    expect(store.repairedRows).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, instanceId: "moved", msg: "an instance's row was not where its row key said; repaired it" }),
    ]);
    expect(JSON.stringify(lines)).not.toContain("h".repeat(32)); // no token hash in the log
    await store.commit({ op: "setHealth", id: "other", health: "unhealthy", at: 2 });
    expect(store.repairedRows).toBe(2);
    await closeStore(store);
    const byId = (rows: [string, string, string][]) => rows.sort((x, y) => x[0].localeCompare(y[0]));
    expect(byId(rowsOnDisk(dir))).toEqual([
      ["moved", "10.8.8.8", "unhealthy"],
      ["other", "10.0.0.1", "unhealthy"],
    ]);

    // The same for a removal: the row goes though its key missed it, and the
    // row the key found stays.
    const again = await openStore(dir);
    await again.store.commit({ op: "register", instance: instance("moved2", "10.8.8.8") });
    await again.store.commit({ op: "remove", id: "moved2", reason: "unregistered", at: 3 });
    expect(again.store.repairedRows).toBe(1);
    // Registered again, elsewhere: a fresh row, found by its fresh key.
    await again.store.commit({ op: "register", instance: instance("moved2", "10.0.0.9") });
    await again.store.commit({ op: "setHealth", id: "moved2", health: "unhealthy", at: 4 });
    expect(again.store.repairedRows).toBe(1);
    await closeStore(again.store);
    expect(byId(rowsOnDisk(dir))).toEqual([
      ["moved", "10.8.8.8", "unhealthy"],
      ["moved2", "10.0.0.9", "unhealthy"],
      ["other", "10.0.0.1", "unhealthy"],
    ]);
  });

  it("counts and logs a repair only once its transaction commits", async () => {
    const dir = await dataDirWith(`
      CREATE TRIGGER move AFTER INSERT ON instances WHEN NEW.host = '10.8.8.8'
        BEGIN UPDATE instances SET row_key = NEW.row_key + 1000 WHERE row_key = NEW.row_key; END;
      ${REFUSE_TRIGGER}
    `);
    const { logger, lines } = capturedLogger();
    const { store } = await openStore(dir, logger);
    await store.commit({ op: "register", instance: instance("moved", "10.8.8.8") });

    // A repair and a refused write in one transaction: both undone.
    const failed = await Promise.allSettled([
      store.commit({ op: "setHealth", id: "moved", health: "unhealthy", at: 2 }),
      store.commit({ op: "register", instance: instance("y", "10.9.9.9") }),
    ]);
    expect(failed.map((f) => f.status)).toEqual(["rejected", "rejected"]);
    expect(store.repairedRows).toBe(0);
    expect(lines).toEqual([]);

    await store.commit({ op: "setHealth", id: "moved", health: "unhealthy", at: 3 });
    expect(store.repairedRows).toBe(1);
    expect(lines).toHaveLength(1);
    await closeStore(store);
    expect(rowsOnDisk(dir)).toEqual([["moved", "10.8.8.8", "unhealthy"]]);
  });

  it("goes on from an instance's revision when a hand-edited file puts it above the store's", async () => {
    const dir = tempDataDir();
    const first = await openStore(dir);
    await first.store.commit({ op: "register", instance: instance("x") }); // revision 1
    await closeStore(first.store);
    editDatabase(dir, "UPDATE instances SET revision = 40 WHERE id = 'x'");
    const { store } = await openStore(dir);
    await expect(store.commit({ op: "setHealth", id: "x", health: "unhealthy", at: 2 })).resolves.toMatchObject({ revision: 41 });
  });

  it("keeps each id's newest row when a file holds several, and deletes the others", async () => {
    const dir = tempDataDir();
    const first = await openStore(dir);
    await first.store.commit({ op: "register", instance: instance("x", "10.0.0.1") }); // revision 1
    await first.store.commit({ op: "register", instance: instance("y", "10.0.0.1") }); // revision 2
    await closeStore(first.store);
    // A file edited by hand: an older copy of x after it, a newer copy of y.
    editDatabase(
      dir,
      `
        INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
          SELECT id, service_type, '10.0.0.7', port, metadata, health_check_path, health, registered_at, updated_at, 0, token_hash
          FROM instances WHERE id = 'x';
        INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
          SELECT id, service_type, '10.0.0.8', port, metadata, health_check_path, 'unhealthy', registered_at, updated_at, 2, token_hash
          FROM instances WHERE id = 'y';
        -- Two copies of z at one revision: the one written last is kept.
        INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
          SELECT 'z', service_type, '10.0.1.1', port, metadata, health_check_path, health, registered_at, updated_at, 1, token_hash
          FROM instances WHERE id = 'x' AND host = '10.0.0.1';
        INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
          SELECT 'z', service_type, '10.0.1.2', port, metadata, health_check_path, health, registered_at, updated_at, 1, token_hash
          FROM instances WHERE id = 'x' AND host = '10.0.0.1';
        -- The newer copy of y is revision 2 as well; make the original older.
        UPDATE instances SET revision = 1 WHERE id = 'y' AND host = '10.0.0.1';
      `,
    );

    const { logger, lines } = capturedLogger();
    const second = await openStore(dir, logger);
    expect(second.instances.map((i) => [i.id, i.host]).sort()).toEqual([
      ["x", "10.0.0.1"],
      ["y", "10.0.0.8"],
      ["z", "10.0.1.2"],
    ]);
    expect(second.store.repairedRows).toBe(3);
    expect(lines).toEqual([expect.objectContaining({ level: 40, rows: 3, instanceIds: ["y", "x", "z"] })]);
    // Each id's one row is the one its key finds.
    await second.store.commit({ op: "setHealth", id: "y", health: "healthy", at: 5 });
    await second.store.commit({ op: "remove", id: "x", reason: "unregistered", at: 5 });
    expect(second.store.repairedRows).toBe(3);
    await closeStore(second.store);
    expect(rowsOnDisk(dir)).toEqual([
      ["y", "10.0.0.8", "healthy"],
      ["z", "10.0.1.2", "healthy"],
    ]);
  });
});

describe("SqliteStore row keys, opening", () => {
  it("refuses to start when the repeated rows cannot be deleted, naming the file, and lets go of it", async () => {
    const dir = await dataDirWithRepeatedRow("CREATE TRIGGER keep BEFORE DELETE ON instances BEGIN SELECT RAISE(ABORT, 'kept'); END;");
    const err = await new SqliteStore({ dataDir: dir }).open(() => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreOpenError);
    expect((err as Error).message).toContain(join(dir, DATABASE_FILE));
    // The failed open closed its connection: the file is not held locked.
    editDatabase(dir, "DROP TRIGGER keep");
    const store = new SqliteStore({ dataDir: dir });
    const state = await store.open(() => {});
    expect(state.instances.map((i) => i.host)).toEqual(["10.0.0.1"]);
    await store.close();
  });

  it("rotate-epoch reports the rows it deleted on stderr, its answer alone on stdout", async () => {
    const dir = await dataDirWithRepeatedRow();
    const out = await runCli(["rotate-epoch", "--data-dir", dir]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^new epoch \S+ for .*\n$/);
    expect(out.stderr).toContain("deleted instance rows repeating an id");
    expect(out.stderr).toContain('"instanceIds":["x"]');
  });
});

describe("RowKeyMap", () => {
  it("rolls back a transaction's changes newest first, however often one id changed", () => {
    const keys = new RowKeyMap();
    keys.load("a", 1);
    keys.load("b", 2);
    keys.set("a", 3);
    keys.delete("a");
    keys.set("a", 4);
    keys.delete("b");
    keys.set("c", 5);
    keys.rollback();
    expect([keys.get("a"), keys.get("b"), keys.get("c"), keys.size]).toEqual([1, 2, undefined, 2]);
  });

  it("keeps a committed transaction's changes through a later rollback", () => {
    const keys = new RowKeyMap();
    keys.set("a", 1);
    keys.commit();
    keys.set("a", 2);
    keys.rollback();
    expect(keys.get("a")).toBe(1);
  });
});
