import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import { ConfigError } from "../config/load-config.js";
import type { Config } from "../config/settings.js";
import { MemoryStore } from "./memory-store.js";
import type { RegistryStore } from "../registry/registry-store.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";

function readSetting(env: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${env}: cannot read ${path}: ${(err as Error).message}`);
  }
}

function parseEndpoints(raw: string): string[] {
  const endpoints = raw.split(",").map((e) => e.trim()).filter((e) => e !== "");
  if (endpoints.length === 0) throw new ConfigError("ETCD_ENDPOINTS: no endpoint given");
  for (const e of endpoints) {
    try {
      const url = new URL(e.includes("://") ? e : `http://${e}`);
      if (!url.port && !url.hostname) throw new Error();
    } catch {
      throw new ConfigError(`ETCD_ENDPOINTS: ${JSON.stringify(e)} is not a URL like http://127.0.0.1:2379`);
    }
  }
  return endpoints;
}

/**
 * The store a configuration asks for. The etcd store is loaded only when
 * asked for: etcd3 and the gRPC protos it parses slowed every start-up of a
 * registry on SQLite or memory.
 */
export async function createStore(config: Config, logger?: Logger): Promise<RegistryStore> {
  switch (config.store) {
    case "memory":
      return new MemoryStore();
    case "sqlite":
      return new SqliteStore({
        dataDir: config.dataDir,
        sync: config.storeSync,
        historyLimit: config.historySize,
        ...(logger ? { logger } : {}),
      });
    case "etcd": {
      if ((config.etcdUsername === "") !== (config.etcdPassword === "")) {
        throw new ConfigError("ETCD_USERNAME and ETCD_PASSWORD must be set together");
      }
      if ((config.etcdCertFile === "") !== (config.etcdKeyFile === "")) {
        throw new ConfigError("ETCD_CERT_FILE and ETCD_KEY_FILE must be set together");
      }
      if (config.etcdCertFile !== "" && config.etcdCaFile === "") {
        throw new ConfigError("ETCD_CERT_FILE needs ETCD_CA_FILE");
      }
      const { EtcdStore } = await import("./etcd/etcd-store.js");
      return new EtcdStore({
        endpoints: parseEndpoints(config.etcdEndpoints),
        prefix: config.etcdPrefix,
        memberTtlSeconds: config.etcdMemberTtlS,
        liveness: { staleAfterMs: config.etcdLivenessWindowMs },
        historyLimit: config.historySize,
        ...(logger ? { logger } : {}),
        ...(config.replicaId !== "" ? { replicaId: config.replicaId } : {}),
        ...(config.etcdUsername !== "" ? { auth: { username: config.etcdUsername, password: config.etcdPassword } } : {}),
        ...(config.etcdCaFile !== ""
          ? {
              tls: {
                ca: readSetting("ETCD_CA_FILE", config.etcdCaFile),
                ...(config.etcdCertFile !== ""
                  ? { cert: readSetting("ETCD_CERT_FILE", config.etcdCertFile), key: readSetting("ETCD_KEY_FILE", config.etcdKeyFile) }
                  : {}),
              },
            }
          : {}),
      });
    }
  }
}
