import { status as grpcStatus, type Server, type ServerWritableStream, type handleUnaryCall } from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";

/** What this server reports for a service name. */
export type HealthStatus = "SERVING" | "NOT_SERVING";

type HealthCheckRequest = { service: string };
type HealthCheckResponse = { status: HealthStatus | "SERVICE_UNKNOWN" };
type WatchCall = ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;

/**
 * `grpc.health.v1.Health` (Check, Watch, List) over one status per service
 * name, as grpc-health-check's `HealthImplementation` answers them: Check
 * answers NOT_FOUND for an unknown name; Watch sends the current status
 * (SERVICE_UNKNOWN for an unknown name) and then every status set, and stays
 * open until the client leaves or `endAll`.
 *
 * Ours rather than `HealthImplementation` because shutdown must end the
 * Watch streams: every grpc-js client with health checking enabled holds one
 * open, and a graceful shutdown would wait its whole grace period for them.
 * `HealthImplementation` keeps its streams to itself; reaching them took a
 * stand-in `Server` passed to its `addToServer`, which relied on how that
 * method calls `addService`, not on anything the package promises. The
 * service definition is the package's public `service` export, so the
 * messages decode and encode as they did.
 *
 * @example
 * const health = new HealthService({ "": "SERVING" });
 * health.addToServer(server);
 * health.setStatus("", "NOT_SERVING"); // every Watch of "" gets it
 * health.endAll(); // at shutdown: each Watch ends with UNAVAILABLE
 */
export class HealthService {
  private readonly statuses = new Map<string, HealthStatus>();
  /** Open Watch streams, by the service name they watch. */
  private readonly watches = new Map<string, Set<WatchCall>>();

  constructor(initial: Readonly<Record<string, HealthStatus>>) {
    for (const [service, status] of Object.entries(initial)) this.statuses.set(service, status);
  }

  /** Sets a service's status and sends it to every Watch of that service. */
  setStatus(service: string, status: HealthStatus): void {
    this.statuses.set(service, status);
    for (const call of this.watches.get(service) ?? []) call.write({ status });
  }

  /** Serves `grpc.health.v1.Health` on `server`. */
  addToServer(server: Server): void {
    const check: handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
      const service = call.request.service;
      if (!this.statuses.has(service)) {
        callback({ code: grpcStatus.NOT_FOUND, details: `Health status unknown for service ${shownName(service)}` });
        return;
      }
      whenKnown(this.statusOf(service), (status) => callback(null, { status }));
    };
    const list: handleUnaryCall<unknown, { statuses: Record<string, { status: HealthStatus }> }> = (_call, callback) => {
      const services = [...this.statuses.keys()];
      void Promise.all(services.map((service) => this.statusOf(service))).then((answers) => {
        const statuses: Record<string, { status: HealthStatus }> = {};
        services.forEach((service, i) => (statuses[service] = { status: answers[i] as HealthStatus }));
        callback(null, { statuses });
      });
    };
    server.addService(healthServiceDefinition, { check, watch: (call: WatchCall) => this.watch(call), list });
  }

  /** Ends every open Watch with UNAVAILABLE; statuses already written (NOT_SERVING) go out first. */
  endAll(): void {
    const open = [...this.watches.values()].flatMap((calls) => [...calls]);
    this.watches.clear();
    for (const call of open) {
      // grpc-js ends a server stream's writes, then sends this status.
      call.emit("error", { code: grpcStatus.UNAVAILABLE, details: "server is shutting down" });
    }
  }

  private watch(call: WatchCall): void {
    const service = call.request.service;
    let calls = this.watches.get(service);
    if (!calls) this.watches.set(service, (calls = new Set()));
    calls.add(call);
    call.on("cancelled", () => {
      const current = this.watches.get(service);
      current?.delete(call);
      if (current?.size === 0) this.watches.delete(service);
    });
    if (!this.statuses.has(service)) {
      call.write({ status: "SERVICE_UNKNOWN" });
      return;
    }
    whenKnown(this.statusOf(service), (status) => {
      if (this.watches.get(service)?.has(call)) call.write({ status });
    });
  }

  /**
   * A known service's status as Check, List and a new Watch answer it: the
   * one last set. A subclass may ask for it at each call (see the SDK's
   * `ServingHealth`); Watch streams still hear only what `setStatus` sets.
   */
  protected statusOf(service: string): HealthStatus | Promise<HealthStatus> {
    return this.statuses.get(service) as HealthStatus;
  }
}

/**
 * A requested name as the NOT_FOUND message shows it: whole when short, else
 * its start and length. The message goes out as a header, and clients refuse
 * headers past their limit, so a long name would turn the
 * answer into an error about the answer.
 */
function shownName(name: string): string {
  return name.length <= 64 ? name : `${JSON.stringify(name.slice(0, 64))}… (${name.length} characters)`;
}

/** Runs `next` with `value` now, or once it resolves: a status from memory is answered at once. */
function whenKnown<T>(value: T | Promise<T>, next: (value: T) => void): void {
  if (value instanceof Promise) void value.then(next);
  else next(value);
}
