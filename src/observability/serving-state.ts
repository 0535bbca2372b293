import { EventEmitter } from "node:events";
import type { ServiceRegistry } from "../registry/service-registry.js";

/** Why the server reports NOT_SERVING. */
export type NotServingReason =
  /** SIGTERM/SIGINT: draining before exit. Never cleared. */
  | "shutting_down"
  /** A shared store (etcd) is unreachable: the registry refuses to answer from a stale view. */
  | "store_unavailable"
  /** The last commit failed with a store error (disk, I/O): cleared by the next successful commit. */
  | "store_failing"
  /**
   * Most of this process's probes failed at once, across service types: it
   * suspects its own network (see `MassFailureGuard`), so clients and
   * replicas' balancers should prefer another replica. Cleared when probes
   * pass again.
   */
  | "mass_probe_failure";

/**
 * Whether this server should receive traffic, as one value that
 * `grpc.health.v1` and HTTP `/healthz` both report: SERVING unless some
 * reason says otherwise. Transport-neutral; each front end translates it.
 *
 * @example
 * const serving = new ServingState().follow(registry);
 * serving.on("change", (ok) => console.log(ok ? "SERVING" : "NOT_SERVING", serving.reasons));
 * serving.set("shutting_down", true);
 */
export class ServingState extends EventEmitter<{ change: [serving: boolean] }> {
  private readonly active = new Map<NotServingReason, string>();

  /** True while no reason to refuse traffic is active. */
  get serving(): boolean {
    return this.active.size === 0;
  }

  /** The active reasons, with a short detail each (no secrets), for logs and `/healthz`. */
  get reasons(): { reason: NotServingReason; detail: string }[] {
    return [...this.active].map(([reason, detail]) => ({ reason, detail }));
  }

  /** Turns a reason on or off; emits `change` when SERVING flips. */
  set(reason: NotServingReason, active: boolean, detail = ""): void {
    const before = this.serving;
    if (active) this.active.set(reason, detail);
    else if (reason !== "shutting_down") this.active.delete(reason);
    if (this.serving !== before) this.emit("change", this.serving);
  }

  /** Follows the registry's store availability (a shared store's connection) and its mass-failure guard. */
  follow(registry: ServiceRegistry): this {
    this.set("store_unavailable", !registry.available, "store unreachable");
    registry.on("availability", (available, reason) => this.set("store_unavailable", !available, reason));
    const detail = "most health probes fail at once: suspecting this registry's own network";
    this.set("mass_probe_failure", registry.massFailure.suspected, detail);
    registry.on("massFailure", (suspected) => this.set("mass_probe_failure", suspected, detail));
    return this;
  }
}
