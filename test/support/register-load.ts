import type { RegistryServiceClient, RegisterRequest, RegisterResponse } from "../../gen/registry/v1/registry.js";
import { call, keyAuth } from "./registry-harness.js";
import type { ServerProcess } from "./server-process.js";

/** How `registerUntilKilled` loads the server. */
export interface RegisterLoad {
  readonly key: string;
  /** Callers per client, each with one Register in flight. */
  readonly callersPerClient: number;
  /** The server is SIGKILLed from inside the acknowledgement that brings the count to this. */
  readonly killAfter: number;
  /** The `i`-th request of caller `caller`. */
  readonly request: (caller: number, i: number) => RegisterRequest;
}

/**
 * Registers from every client at once until `killAfter` calls are
 * acknowledged, then SIGKILLs the server from inside that acknowledgement
 * (nothing else of the test runs in between) and resolves, once every caller
 * has stopped, with every acknowledged answer, those already in flight
 * included. A call failing before the kill fails the load.
 */
export async function registerUntilKilled(server: ServerProcess, clients: readonly RegistryServiceClient[], load: RegisterLoad): Promise<RegisterResponse[]> {
  const acked: RegisterResponse[] = [];
  let killed = false;
  const caller = async (c: RegistryServiceClient, id: number): Promise<void> => {
    for (let i = 0; !killed; i++) {
      try {
        acked.push(await call(c, c.register, load.request(id, i), keyAuth(load.key)));
        if (acked.length === load.killAfter) {
          server.kill("SIGKILL");
          killed = true;
        }
      } catch (err) {
        if (!killed) throw err;
      }
    }
  };
  await Promise.all(clients.flatMap((c, ci) => Array.from({ length: load.callersPerClient }, (_, j) => caller(c, ci * load.callersPerClient + j))));
  return acked;
}
