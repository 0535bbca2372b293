import { status as grpcStatus, type handleUnaryCall, type Server, type ServerWritableStream } from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";

type Status = "SERVING" | "NOT_SERVING";
type HealthCheckRequest = { service: string };
type HealthCheckResponse = { status: Status | "SERVICE_UNKNOWN" };
type WatchCall = ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;

/**
 * `grpc.health.v1.Health` (Check, Watch, List) for a service's own port, so
 * the registry's `grpc` checks and grpc-js clients with health checking can
 * ask it: SERVING while `check` says healthy, NOT_SERVING when it does not
 * (or throws) and from `drain()` on, whatever `check` says, so clients move
 * away before the port closes. The overall name "" and `names` are known;
 * others are NOT_FOUND (Watch: SERVICE_UNKNOWN).
 *
 * Ours rather than grpc-health-check's `HealthImplementation` (whose service
 * definition it uses): Check asks `check` at every call, as the HTTP endpoint
 * does, and `close()` ends the Watch streams, which a graceful close would
 * otherwise wait on for its whole grace. Watch sends the status when it
 * opens and when draining starts; `check` is not polled for it.
 */
export class ServingHealth {
  private readonly names: ReadonlySet<string>;
  /** Open Watch streams, each with whether its name is known (only those get status changes). */
  private readonly watches = new Map<WatchCall, boolean>();
  private draining = false;

  constructor(
    private readonly check: () => boolean | Promise<boolean>,
    names: readonly string[] = [],
  ) {
    this.names = new Set(["", ...names]);
  }

  /**
   * Serves it on `server`. False, leaving the server as it is, when the
   * server already serves grpc.health.v1 (its own implementation stays).
   */
  addToServer(server: Server): boolean {
    const check: handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
      const name = call.request.service;
      if (!this.names.has(name)) {
        callback({ code: grpcStatus.NOT_FOUND, details: `Health status unknown for service ${name}` });
        return;
      }
      void this.status().then((status) => callback(null, { status }));
    };
    const list: handleUnaryCall<unknown, { statuses: Record<string, { status: Status }> }> = (_call, callback) => {
      void this.status().then((status) => {
        const statuses: Record<string, { status: Status }> = {};
        for (const name of this.names) statuses[name] = { status };
        callback(null, { statuses });
      });
    };
    try {
      server.addService(healthServiceDefinition, { check, watch: (call: WatchCall) => this.watch(call), list });
      return true;
    } catch (err) {
      // grpc-js refuses a second handler for a method: the caller serves health itself.
      if (/already provided/.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** From now on NOT_SERVING, to Check and to every Watch. Idempotent. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const [call, known] of this.watches) if (known) call.write({ status: "NOT_SERVING" });
  }

  /** Drains, and ends every Watch stream (UNAVAILABLE) after its NOT_SERVING. */
  close(): void {
    this.drain();
    const open = [...this.watches.keys()];
    this.watches.clear();
    for (const call of open) call.emit("error", { code: grpcStatus.UNAVAILABLE, details: "the server is closing" });
  }

  private async status(): Promise<Status> {
    if (this.draining) return "NOT_SERVING";
    let ok: boolean;
    try {
      ok = await this.check();
    } catch {
      ok = false;
    }
    return ok && !this.draining ? "SERVING" : "NOT_SERVING";
  }

  private watch(call: WatchCall): void {
    const known = this.names.has(call.request.service);
    this.watches.set(call, known);
    call.on("cancelled", () => this.watches.delete(call));
    if (!known) {
      call.write({ status: "SERVICE_UNKNOWN" });
      return;
    }
    void this.status().then((status) => {
      if (this.watches.has(call)) call.write({ status });
    });
  }
}
