import { once } from "node:events";
import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { registerUntilKilled } from "../support/register-load.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

const KEY = "log-durability-registration-key-01";

/**
 * The log is written a run of JavaScript at a time (one write(2) for all the
 * lines of an event-loop turn): a line must still be out before the change
 * it reports is acknowledged, so a SIGKILL right after an acknowledgement
 * loses no line of it.
 */
describe("the server's log under SIGKILL", () => {
  let server: ServerProcess | undefined;
  const clients: RegistryServiceClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    server?.kill("SIGKILL");
  });

  for (const store of ["memory", "sqlite"]) {
    it(`has the line of every acknowledged Register, with many calls a turn (STORE=${store})`, async () => {
      server = await startServerProcess({ STORE: store, SERVICE_REGISTRATION_KEY: KEY, HEALTH_CHECKS: "false" });
      const closed = once(server.child, "close"); // every byte of stdout read
      const loaders = Array.from({ length: 2 }, () => {
        const c = new RegistryServiceClient(`127.0.0.1:${server!.port}`, credentials.createInsecure(), {
          "grpc.use_local_subchannel_pool": 1,
        });
        clients.push(c);
        return c;
      });
      const acked = await registerUntilKilled(server, loaders, {
        key: KEY,
        callersPerClient: 32,
        killAfter: 300,
        // An address per call: a Register of a live address would replace its instance.
        request: (caller, i) => ({ serviceType: "logged", port: 1 + (i % 65535), host: `10.1.${caller}.1`, metadata: {} }),
      });
      await closed;
      expect(await server.exited).toBe("SIGKILL");

      const logged = new Set(
        server
          .output()
          .split("\n")
          .filter((line) => line.includes('"instance registered"'))
          .map((line) => (JSON.parse(line) as { instanceId: string }).instanceId),
      );
      expect(acked.length).toBeGreaterThanOrEqual(300);
      expect(acked.map((a) => a.serviceId).filter((id) => !logged.has(id))).toEqual([]);
    }, 60_000);
  }
});
