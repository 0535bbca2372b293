import type { InstanceIndex } from "./instance-index.js";
import { RegistryError } from "./registry-error.js";
import type { Change } from "./types.js";

/**
 * Upper bounds on what registrations may grow the registry to, each named by
 * the setting that sets it (operators read the name in the refusal and in
 * `registry_quota_refusals_total`). Infinity: no bound.
 */
export interface InstanceQuotaLimits {
  /** Live instances in all. */
  readonly MAX_INSTANCES: number;
  /** Live instances of one service type. */
  readonly MAX_INSTANCES_PER_TYPE: number;
  /** Live instances registered with one registration key. */
  readonly MAX_INSTANCES_PER_KEY: number;
  /** Service types with at least one live instance. */
  readonly MAX_SERVICE_TYPES: number;
}

export type QuotaName = keyof InstanceQuotaLimits;

/** No bound at all: a `ServiceRegistry` built by hand, as the seed builds it, limits nothing. */
export const UNLIMITED: InstanceQuotaLimits = {
  MAX_INSTANCES: Infinity,
  MAX_INSTANCES_PER_TYPE: Infinity,
  MAX_INSTANCES_PER_KEY: Infinity,
  MAX_SERVICE_TYPES: Infinity,
};

/** A registration's claim on the quotas, held from the check until its commit ended. */
export interface QuotaReservation {
  release(): void;
}

/**
 * Checks a registration against the quotas before it is committed. Counts
 * are the applied state (the index) plus registrations admitted whose
 * instance the index does not hold yet, so concurrent Registers cannot
 * overshoot a bound together, and one the index already counts is not
 * counted twice while its commit returns.
 *
 * The admitted-not-applied registrations are kept as counters (in all, by
 * type, by key, and the types only they bring), moved as each one is
 * admitted, applied or released: a check costs the same however many
 * Registers are in flight.
 */
export class InstanceQuotas {
  /** Admitted registrations whose instance the index does not hold yet, by instance id. */
  private readonly pending = new Map<string, { readonly serviceType: string; readonly keyId: string | undefined }>();
  private readonly pendingByType = new Map<string, number>();
  private readonly pendingByKey = new Map<string, number>();
  /** Types of pending registrations that the index holds no instance of: each would be a new type. */
  private readonly newTypes = new Set<string>();

  constructor(
    private readonly limits: InstanceQuotaLimits,
    private readonly index: InstanceIndex,
    private readonly onRefused: (quota: QuotaName) => void = () => {},
  ) {}

  /**
   * Admits instance `id` of `serviceType`, registered with key `keyId`, or
   * throws RESOURCE_EXHAUSTED naming the first quota it would exceed. Release
   * the reservation once the commit has ended, applied or failed.
   */
  reserve(id: string, serviceType: string, keyId: string | undefined): QuotaReservation {
    const ofType = this.index.countOfType(serviceType) + (this.pendingByType.get(serviceType) ?? 0);
    this.check("MAX_INSTANCES", this.index.size + this.pending.size, "instances");
    this.check("MAX_INSTANCES_PER_TYPE", ofType, `instances of type ${serviceType}`);
    if (ofType === 0) this.check("MAX_SERVICE_TYPES", this.index.typeCount + this.newTypes.size, "service types");
    if (keyId !== undefined) {
      const ofKey = this.index.countOfKey(keyId) + (this.pendingByKey.get(keyId) ?? 0);
      this.check("MAX_INSTANCES_PER_KEY", ofKey, "instances registered with this key");
    }
    this.pending.set(id, { serviceType, keyId });
    add(this.pendingByType, serviceType, 1);
    if (keyId !== undefined) add(this.pendingByKey, keyId, 1);
    this.recountType(serviceType);
    return { release: () => this.settle(id) };
  }

  /**
   * The index has just applied `change` (any replica's): a pending
   * registration it brings is counted by the index from now on, and a type
   * that appeared or went may change which pending types are new.
   */
  applied(change: Change): void {
    if (change.kind === "health" || change.kind === "draining") return;
    if (change.kind === "registered") this.settle(change.instance.id);
    this.recountType(change.instance.serviceType);
  }

  /** Stops counting a pending registration (applied, or its commit ended); a no-op after the first time. */
  private settle(id: string): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    add(this.pendingByType, p.serviceType, -1);
    if (p.keyId !== undefined) add(this.pendingByKey, p.keyId, -1);
    this.recountType(p.serviceType);
  }

  private recountType(serviceType: string): void {
    if (this.pendingByType.has(serviceType) && this.index.countOfType(serviceType) === 0) this.newTypes.add(serviceType);
    else this.newTypes.delete(serviceType);
  }

  private check(quota: QuotaName, current: number, what: string): void {
    const limit = this.limits[quota];
    if (current < limit) return;
    this.onRefused(quota);
    throw new RegistryError("resource_exhausted", `${quota} reached: ${current} ${what}, the most allowed is ${limit}`);
  }
}

/** Adds `delta` to `key`'s count, forgetting a key whose count reaches 0. */
function add(counts: Map<string, number>, key: string, delta: number): void {
  const n = (counts.get(key) ?? 0) + delta;
  if (n === 0) counts.delete(key);
  else counts.set(key, n);
}
