import type { InstanceIndex } from "./instance-index.js";
import { RegistryError } from "./registry-error.js";

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
 */
export class InstanceQuotas {
  /** Admitted registrations not yet ended, by instance id. */
  private readonly pending = new Map<string, { readonly serviceType: string; readonly keyId: string | undefined }>();

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
    let total = this.index.size;
    let ofType = this.index.countOfType(serviceType);
    let ofKey = keyId === undefined ? 0 : this.index.countOfKey(keyId);
    const newTypes = new Set<string>();
    for (const [pendingId, p] of this.pending) {
      if (this.index.get(pendingId)) continue;
      total++;
      if (p.serviceType === serviceType) ofType++;
      if (keyId !== undefined && p.keyId === keyId) ofKey++;
      if (this.index.countOfType(p.serviceType) === 0) newTypes.add(p.serviceType);
    }
    this.check("MAX_INSTANCES", total, "instances");
    this.check("MAX_INSTANCES_PER_TYPE", ofType, `instances of type ${serviceType}`);
    if (ofType === 0) this.check("MAX_SERVICE_TYPES", this.index.typeCount + newTypes.size, "service types");
    if (keyId !== undefined) this.check("MAX_INSTANCES_PER_KEY", ofKey, "instances registered with this key");
    this.pending.set(id, { serviceType, keyId });
    return { release: () => void this.pending.delete(id) };
  }

  private check(quota: QuotaName, current: number, what: string): void {
    const limit = this.limits[quota];
    if (current < limit) return;
    this.onRefused(quota);
    throw new RegistryError("resource_exhausted", `${quota} reached: ${current} ${what}, the most allowed is ${limit}`);
  }
}
