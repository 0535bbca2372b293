import { afterEach, describe, expect, it } from "vitest";
import { RegistryClient } from "../../src/client/registry-client.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
import { dataDirWith } from "../support/sqlite-data.js";

const INSTANCES = 15_000;

/**
 * One service type may hold 20,000 instances by default (MAX_INSTANCES_PER_TYPE),
 * and its GetByType answer is one message: with a little metadata apiece it
 * is past gRPC's default 4 MiB receive cap, which the SDK must not keep.
 */
describe("the SDK reading a service type whose answer is over 4 MiB", () => {
  let h: Harness | undefined;
  let client: RegistryClient | undefined;
  afterEach(async () => {
    client?.close();
    await h?.close();
  });

  it("gets every instance", async () => {
    const dataDir = await dataDirWith(`
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${INSTANCES})
      INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash, key_id, draining_since, health_check)
      SELECT printf('01a24fb0-0000-7000-8000-%012d', i), 'big', printf('10.2.%d.%d', i / 256, i % 256), 8080,
             json_object('notes', printf('%.300c', 'x')), '/health', 'healthy', 0, 0, i, zeroblob(32), NULL, 0, NULL
      FROM n;
      UPDATE meta SET value = '${INSTANCES}' WHERE key = 'revision';
    `);
    h = await startHarness({ registry: { store: new SqliteStore({ dataDir }) } });
    client = new RegistryClient({ addresses: [h.address], auth: { key: TEST_KEY } });
    const { instances } = await client.getByType("big");
    expect(instances).toHaveLength(INSTANCES);
    expect(instances[0]?.metadata.notes).toHaveLength(300);
  }, 30_000);
});
