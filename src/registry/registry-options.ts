import type { RegistryLogger } from "../logging/registry-logger.js";
import type { ProbeResult, ProbeTarget } from "../health/http-probe.js";
import { ProbeTargetPolicy } from "../health/probe-target-policy.js";
import type { RegistryStore } from "./registry-store.js";
import type { InstanceQuotaLimits, QuotaName } from "./instance-quotas.js";
import type { CommitObserver } from "./commit-outcomes.js";

/**
 * Options of `ServiceRegistry`. The health-check names and defaults are the
 * seed's; the rest are SPEC 4.2 and 4.3. Every dependency (store, clock,
 * prober, logger) can be injected, so tests set limits instead of patching.
 */
export interface ServiceRegistryOptions {
  /** Where state is committed. Default: a new `MemoryStore`. */
  store?: RegistryStore;
  /** Probe instances at all. Default true. */
  healthChecks?: boolean;
  /** Due probes dispatched per scheduler tick. Default 100. */
  healthCheckBatchSize?: number;
  /** Time between two probes of one instance, ms. Default 5000. */
  healthCheckInterval?: number;
  /** Probes in flight at once. Default 10. */
  healthCheckMaxRequests?: number;
  /** Probe timeout, ms. Default 2000. */
  healthCheckTTL?: number;
  /** Consecutive failures before an instance turns UNHEALTHY. Default 1. */
  unhealthyThreshold?: number;
  /** Consecutive passes before an unhealthy instance turns HEALTHY. Default 1. */
  healthyThreshold?: number;
  /** Remove an instance unhealthy this long, ms; 0 never. Default 300000. */
  deregisterAfter?: number;
  /**
   * How long an instance may stay draining before it is removed (reason
   * DRAIN_EXPIRED), ms; 0 never removes one. Default 60000.
   */
  drainTimeout?: number;
  /**
   * The registry-side fault guard (see `MassFailureGuard`): when more than
   * this percent of the instances this process probes start failing within
   * one `healthCheckInterval`, the registry suspects its own network, holds
   * every health state and removes nothing. 0 turns the guard off. Default 60.
   */
  massFailureThreshold?: number;
  /** Failing instances needed, beside the percentage, before the guard trips. Default 10. */
  massFailureMinInstances?: number;
  /** Service types the failing instances must span before the guard trips. Default 2. */
  massFailureMinServiceTypes?: number;
  /**
   * The per-type panic threshold, percent: a type with fewer than this share
   * of its (not draining) instances healthy is in panic: GetByType answers
   * with all of them, flagged, and none of them expires. 0 turns panic off.
   * Default 50.
   */
  panicThreshold?: number;
  /**
   * Types with fewer (not draining) instances than this are never in panic:
   * a one-instance type whose instance died would otherwise be answered and
   * never expire. Default 3.
   */
  panicMinInstances?: number;
  /** Changes kept for watchers to resume from. Default 10000. */
  historySize?: number;
  /** Live events buffered per watcher before it is parked. Default 1024. */
  watchQueueLimit?: number;
  /** Idle time before a watcher gets a BOOKMARK, ms. Default 30000. */
  bookmarkInterval?: number;
  /**
   * How long a watch resuming from a revision of this epoch that this
   * registry has not applied yet (a replica behind another) waits for it
   * before answering UNAVAILABLE, ms. Default 5000. Shared stores only: on
   * a store of this process no replica is ahead, and the watch gets RESET.
   */
  resumeWait?: number;
  /**
   * Where the registry logs registrations, removals, health transitions and
   * errors: `console` (the default, as in the seed), a pino logger (what the
   * server passes), or any object with debug/info/warn/error methods. Pass
   * `pino({ level: "silent" })` or a no-op object to keep it quiet.
   */
  logger?: RegistryLogger;
  /** Wall clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Replaces the HTTP prober (for non-HTTP checks or tests). */
  probe?: (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;
  /** Bounds on instances and service types (each absent one: no bound). Default: none. */
  quotas?: Partial<InstanceQuotaLimits>;
  /** Told of every registration a quota refused (metrics). */
  onQuotaRefused?: (quota: QuotaName) => void;
  /** Told how each batch's commits went, and when the store starts and stops failing (metrics, serving state). */
  commitObserver?: CommitObserver;
  /**
   * Which addresses instances may be probed at. Register refuses an IP
   * literal host it denies (INVALID_ARGUMENT); names are judged by the
   * prober at each probe. Default: `new ProbeTargetPolicy()` (denies
   * link-local, unspecified and multicast). The default prober uses it too;
   * a `probe` passed in must apply it itself.
   */
  probeTargetPolicy?: ProbeTargetPolicy;
}

/** Options with every default filled in. */
export type ResolvedRegistryOptions = Required<Omit<ServiceRegistryOptions, "probe" | "store" | "logger" | "quotas" | "onQuotaRefused" | "commitObserver">> &
  Pick<ServiceRegistryOptions, "probe">;

const positive = ["healthCheckBatchSize", "healthCheckInterval", "healthCheckMaxRequests", "healthCheckTTL",
  "unhealthyThreshold", "healthyThreshold", "historySize", "watchQueueLimit", "bookmarkInterval", "resumeWait",
  "massFailureMinInstances", "massFailureMinServiceTypes", "panicMinInstances"] as const;

/** Fills defaults and rejects nonsensical numbers with a RangeError naming the option. */
export function resolveRegistryOptions(options: ServiceRegistryOptions): ResolvedRegistryOptions {
  const resolved: ResolvedRegistryOptions = {
    healthChecks: options.healthChecks ?? true,
    healthCheckBatchSize: options.healthCheckBatchSize ?? 100,
    healthCheckInterval: options.healthCheckInterval ?? 5000,
    healthCheckMaxRequests: options.healthCheckMaxRequests ?? 10,
    healthCheckTTL: options.healthCheckTTL ?? 2000,
    unhealthyThreshold: options.unhealthyThreshold ?? 1,
    healthyThreshold: options.healthyThreshold ?? 1,
    deregisterAfter: options.deregisterAfter ?? 300_000,
    drainTimeout: options.drainTimeout ?? 60_000,
    massFailureThreshold: options.massFailureThreshold ?? 60,
    massFailureMinInstances: options.massFailureMinInstances ?? 10,
    massFailureMinServiceTypes: options.massFailureMinServiceTypes ?? 2,
    panicThreshold: options.panicThreshold ?? 50,
    panicMinInstances: options.panicMinInstances ?? 3,
    historySize: options.historySize ?? 10_000,
    watchQueueLimit: options.watchQueueLimit ?? 1024,
    bookmarkInterval: options.bookmarkInterval ?? 30_000,
    resumeWait: options.resumeWait ?? 5000,
    now: options.now ?? Date.now,
    probe: options.probe,
    probeTargetPolicy: options.probeTargetPolicy ?? new ProbeTargetPolicy(),
  };
  for (const name of positive) {
    const value = resolved[name];
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  if (!Number.isInteger(resolved.deregisterAfter) || resolved.deregisterAfter < 0) {
    throw new RangeError(`deregisterAfter must be a non-negative integer, got ${resolved.deregisterAfter}`);
  }
  if (!Number.isInteger(resolved.drainTimeout) || resolved.drainTimeout < 0) {
    throw new RangeError(`drainTimeout must be a non-negative integer, got ${resolved.drainTimeout}`);
  }
  for (const name of ["massFailureThreshold", "panicThreshold"] as const) {
    const value = resolved[name];
    if (!Number.isInteger(value) || value < 0 || value > 100) throw new RangeError(`${name} must be a whole percentage (0-100), got ${value}`);
  }
  return resolved;
}
