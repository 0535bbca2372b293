import { experimental, status, type ChannelOptions } from "@grpc/grpc-js";
import { HealthyInstances, type HealthySet } from "./healthy-instances.js";
import type { RegistryClient } from "./registry-client.js";
import { parseRegistryTarget, type RegistryTarget } from "./registry-target.js";

type Endpoint = experimental.Endpoint;
/** grpc-js's `ResolverConstructor` (not re-exported by `experimental`). */
type ResolverConstructor = Parameters<typeof experimental.registerResolver>[1];

/**
 * grpc-js service config that spreads calls over every resolved instance;
 * pass it as the channel option `grpc.service_config`.
 */
export const ROUND_ROBIN_SERVICE_CONFIG = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/** Options of `registerRegistryResolver`. */
export interface RegistryResolverOptions {
  /** Client that watches the registry; it needs credentials (the key, or an instance's). */
  readonly client: RegistryClient;
  /** URI scheme to handle. Default `registry`. */
  readonly scheme?: string;
  /**
   * Target authority this client serves: `registry://<authority>/<type>`.
   * Default "" (`registry:///<type>`). Register one client per authority to
   * reach several registries from one process.
   */
  readonly authority?: string;
  /** Told each time a target's address list changes: for logs and tests. */
  readonly onUpdate?: (update: ResolverUpdate) => void;
  /**
   * After the registry refuses the watch (a rotated key...), wait this long
   * before trying again; channels keep their last list meanwhile. Default 10000 ms.
   */
  readonly retryAfterMs?: number;
}

/** An address list handed to grpc-js. */
export interface ResolverUpdate {
  readonly serviceType: string;
  /** The target's selector (`registry:///billing?zone=eu-1`); empty when it has none. */
  readonly selector: Readonly<Record<string, string>>;
  /** `host:port` of every healthy instance (every instance while the type is in panic), or empty. */
  readonly addresses: readonly string[];
  /** The type is in panic: `addresses` lists its unhealthy instances too. */
  readonly panic?: boolean;
  /** Registry revision the list reflects; absent when it reports an error. */
  readonly revision?: number;
  /** Why there is no list (registry unreachable before the first snapshot, bad credentials). */
  readonly error?: string;
}

/** The watches and options behind one scheme + authority. */
class ResolverSource {
  private readonly sets = new Map<string, HealthyInstances>();

  constructor(readonly options: RegistryResolverOptions) {}

  /** The shared healthy set of a target's type and selector (one watch however many channels use it). */
  healthySet(target: RegistryTarget): HealthyInstances {
    let set = this.sets.get(target.key);
    if (!set) {
      const created = new HealthyInstances(
        this.options.client,
        target.serviceType,
        () => {
          if (this.sets.get(target.key) === created) this.sets.delete(target.key);
        },
        this.options.retryAfterMs,
        target.selector,
      );
      this.sets.set(target.key, created);
      set = created;
    }
    return set;
  }
}

/** Sources by scheme, then by authority. */
const sources = new Map<string, Map<string, ResolverSource>>();

/**
 * Registers the grpc-js name resolver for `registry:///<service_type>`
 * (SPEC 4.6): a channel created with that target is fed the healthy
 * instances of the type, from a watch on the registry, and updated live as
 * instances come, go, fail or recover. With `round_robin` the channel spreads
 * calls over all of them. A query in the target is a metadata selector:
 * `registry:///billing?zone=eu-1&tier=web` picks only instances with both
 * (see `parseRegistryTarget`); a malformed one fails the channel's calls
 * with UNAVAILABLE naming the fault. Call before creating such channels.
 * Returns a function that unregisters this client (channels already created
 * keep it).
 *
 * @example
 * registerRegistryResolver({ client: new RegistryClient({ addresses: ["registry:4000"], auth: { key } }) });
 * const greeter = new GreeterClient("registry:///greeter?zone=eu-1", credentials.createInsecure(), {
 *   "grpc.service_config": ROUND_ROBIN_SERVICE_CONFIG,
 * });
 */
export function registerRegistryResolver(options: RegistryResolverOptions): () => void {
  const scheme = options.scheme ?? "registry";
  const authority = options.authority ?? "";
  let byAuthority = sources.get(scheme);
  if (!byAuthority) {
    byAuthority = new Map();
    sources.set(scheme, byAuthority);
    experimental.registerResolver(scheme, resolverClass(byAuthority));
  }
  const source = new ResolverSource(options);
  byAuthority.set(authority, source);
  return () => {
    if (byAuthority.get(authority) === source) byAuthority.delete(authority);
  };
}

/** The grpc-js `ResolverConstructor` serving one scheme. */
function resolverClass(byAuthority: Map<string, ResolverSource>): ResolverConstructor {
  return class RegistryResolver implements experimental.Resolver {
    private readonly parsed: RegistryTarget | { readonly error: string };
    private readonly source: ResolverSource | undefined;
    private unsubscribe: (() => void) | undefined;
    private latest: HealthySet | undefined;
    /** The set last handed to grpc-js, and whether its load balancer accepted it. */
    private reported: { set: HealthySet; accepted: boolean; at: number } | undefined;
    private reportScheduled = false;

    constructor(
      private readonly target: experimental.GrpcUri,
      private readonly listener: experimental.ResolverListener,
      _channelOptions: ChannelOptions,
    ) {
      this.parsed = parseRegistryTarget(target.path);
      this.source = byAuthority.get(target.authority ?? "");
    }

    /**
     * grpc-js asks for (new) results: start watching. Once watching, there is
     * nothing new to fetch (changes are pushed as they happen), so the same
     * list is handed over again only if the last one was rejected, at most
     * once a second: grpc-js asks on every connection failure, and answering
     * each time would spin.
     */
    updateResolution(): void {
      if (!this.source) {
        return this.reportError(`no registry client registered for ${experimental.uriToString(this.target)}`);
      }
      const parsed = this.parsed;
      if ("error" in parsed) return this.reportError(`${experimental.uriToString(this.target)}: ${parsed.error}`);
      if (!this.unsubscribe) {
        this.unsubscribe = this.source.healthySet(parsed).subscribe((set) => {
          this.latest = set;
          this.report();
        });
      } else if (this.latest && (this.reported?.set !== this.latest || !this.reported.accepted)) {
        this.scheduleReport(Math.max(0, (this.reported?.at ?? 0) + 1000 - Date.now()));
      }
    }

    /** The channel is idle or closed: stop watching (a later updateResolution starts again). */
    destroy(): void {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      this.latest = undefined;
      this.reported = undefined;
    }

    /**
     * The service type, without the selector: calls carry this as `:authority`,
     * where a `?` is not allowed (HTTP/2 servers reset such streams).
     */
    static getDefaultAuthority(target: experimental.GrpcUri): string {
      return target.path.replace(/^\/+/, "").replace(/\?.*$/s, "");
    }

    private scheduleReport(delayMs: number): void {
      if (this.reportScheduled) return;
      this.reportScheduled = true;
      // Never call the listener synchronously from updateResolution.
      setTimeout(() => {
        this.reportScheduled = false;
        this.report();
      }, delayMs).unref();
    }

    private report(): void {
      const set = this.latest;
      const parsed = this.parsed;
      if (!set || !this.unsubscribe || "error" in parsed) return;
      const { serviceType, selector } = parsed;
      const onUpdate = this.source?.options.onUpdate;
      const changed = this.reported?.set !== set;
      if (!set.ok) {
        const details = `registry: ${set.error.message}`;
        const accepted = this.listener(experimental.statusOrFromError({ code: status.UNAVAILABLE, details }), {}, null, "");
        this.reported = { set, accepted, at: Date.now() };
        if (changed) onUpdate?.({ serviceType, selector, addresses: [], error: set.error.message });
        return;
      }
      const endpoints: Endpoint[] = set.instances.map((r) => ({ addresses: r.addresses.map((a) => ({ ...a })) }));
      let accepted = this.listener(experimental.statusOrFromValue(endpoints), {}, null, "");
      if (endpoints.length === 0) {
        // grpc-js 1.14's round_robin parks calls on an empty list until their
        // deadline; after an error (with no endpoints left) it fails them at once.
        const details = `registry: no healthy instances of ${parsed.key}`;
        accepted = this.listener(experimental.statusOrFromError({ code: status.UNAVAILABLE, details }), {}, null, details);
      }
      this.reported = { set, accepted, at: Date.now() };
      if (changed) onUpdate?.({
        serviceType,
        selector,
        addresses: set.instances.map((r) => `${r.instance.host}:${r.instance.port}`),
        revision: set.revision,
        panic: set.panic,
      });
    }

    private reportError(details: string): void {
      setImmediate(() => this.listener(experimental.statusOrFromError({ code: status.UNAVAILABLE, details }), {}, null, ""));
    }
  };
}
