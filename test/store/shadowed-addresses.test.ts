import { describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { dataDirWith } from "../support/sqlite-data.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/** Data written before addresses were unique (issue #25): one instance per address from the start. */
describe("an address held twice in stored data", () => {
  it("keeps the latest registered instance at each address and removes the others (replaced) at start-up, whatever changed last", async () => {
    const dataDir = await dataDirWith(
      `INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
         VALUES ('new', 'api', '10.0.0.1', 80, '{}', '/health', 'healthy', 2, 2, 2, zeroblob(32)),
                -- Registered first, changed last (its probes pass again once the new process answers on its port).
                ('old', 'api', '10.0.0.1', 80, '{}', '/health', 'healthy', 1, 5, 5, zeroblob(32)),
                ('other-port', 'api', '10.0.0.1', 81, '{}', '/health', 'healthy', 3, 3, 3, zeroblob(32)),
                ('other-type', 'db', '10.0.0.1', 80, '{}', '/health', 'healthy', 4, 4, 4, zeroblob(32));
       INSERT INTO history (revision, change) VALUES (5, '{"kind":"registered","instance":{"id":"other-type","service_type":"db","host":"10.0.0.1","port":80,"metadata":"{}","health_check_path":"/health","health":"healthy","registered_at":4,"updated_at":4,"revision":4}}');`,
    );
    const registry = new ServiceRegistry({ healthChecks: false, logger: quiet, store: new SqliteStore({ dataDir }) });
    const removed = new Promise((resolve) => registry.on("instanceRemoved", (i, reason) => resolve([i.id, reason])));
    await registry.start();
    try {
      expect(await removed).toEqual(["old", "replaced"]);
      expect(registry.getByType("api", true).instances.map((i) => i.id).sort()).toEqual(["new", "other-port"]);
      expect(registry.getByType("db", true).instances.map((i) => i.id)).toEqual(["other-type"]);
    } finally {
      await registry.close();
    }
  });
});
