import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Instance } from "../registry/types.js";
import type { RegistryClientError } from "./client-error.js";
import type { RegistryClient } from "./registry-client.js";
import type { RegistryWatch } from "./registry-watch.js";

/** One healthy instance and the socket addresses its host resolves to. */
export interface ResolvedInstance {
  readonly instance: Instance;
  readonly addresses: readonly { readonly host: string; readonly port: number }[];
}

/**
 * The healthy set of one service type, or why there is none yet. While the
 * type is in panic (`panic`), the set is every instance of the type, as
 * GetByType answers then.
 */
export type HealthySet =
  | { readonly ok: true; readonly instances: readonly ResolvedInstance[]; readonly revision: number; readonly panic: boolean }
  | { readonly ok: false; readonly error: RegistryClientError };

type Listener = (set: HealthySet) => void;

/**
 * The healthy instances of one service type (only those matching `selector`,
 * when one is given), kept current from one resumable watch and shared by
 * every subscriber (e.g. every channel of a router that targets
 * `registry:///billing`, or `registry:///billing?zone=eu-1`). The registry
 * filters the watch at the source, so other instances never arrive. Draining
 * instances are left out. While the watch's events say the type is in panic
 * (fewer than the registry's panic threshold healthy), every instance that
 * is not draining: calls spread over all of them rather than pile on the few
 * that pass their checks, as with GetByType. Updates are coalesced: a burst of changes
 * (a snapshot, a replay after reconnecting) gives one update. The last known
 * set is kept while the registry is unreachable: stale addresses are better
 * than none, and the channel's own connection checks skip dead ones.
 */
export class HealthyInstances {
  private readonly instances = new Map<string, Instance>();
  private readonly listeners = new Set<Listener>();
  private watch: RegistryWatch | undefined;
  private latest: HealthySet | undefined;
  private synced = false;
  private revision = 0;
  /** The type is in panic, as of the last event. */
  private panic = false;
  private publishScheduled = false;
  private publishSeq = 0;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: RegistryClient,
    readonly serviceType: string,
    private readonly onEmpty: () => void = () => {},
    /** Wait before watching again after the registry refused the watch. */
    private readonly retryAfterMs = 10_000,
    /** Only instances whose metadata has each of these keys with this value; empty for all. */
    readonly selector: Readonly<Record<string, string>> = {},
  ) {}

  /**
   * Calls `listener` with the current set (asynchronously, if one is known)
   * and after every change. Returns the unsubscribe function; the watch stops
   * when the last subscriber leaves.
   */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.watch) this.start();
    const latest = this.latest;
    if (latest) setImmediate(() => this.listeners.has(listener) && listener(latest));
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
      clearTimeout(this.retryTimer);
      this.watch?.close();
      this.watch = undefined;
      this.onEmpty();
    };
  }

  private start(): void {
    const watch = this.client.watch({
      serviceType: this.serviceType,
      selector: this.selector,
      onDisconnect: ({ error }) => {
        // Before the first snapshot, fail calls fast instead of queueing them forever.
        if (!this.synced) this.deliver({ ok: false, error });
      },
    });
    this.watch = watch;
    void (async () => {
      try {
        for await (const event of watch) {
          switch (event.type) {
            case "snapshot":
              this.instances.clear();
              for (const instance of event.instances) this.instances.set(instance.id, instance);
              this.panic = event.panicTypes.includes(this.serviceType);
              this.synced = true;
              break;
            case "instanceRegistered":
            case "instanceDraining":
            case "healthCheckPassed":
            case "healthCheckFailed":
              this.instances.set(event.instance.id, event.instance);
              this.panic = event.panic;
              break;
            case "instanceRemoved":
              this.instances.delete(event.instance.id);
              this.panic = event.panic;
              break;
            case "bookmark":
              // The type's panic moved with a change this watch's selector left out (or did not move at all).
              if (event.panic === this.panic) continue;
              this.panic = event.panic;
              break;
            default:
              continue; // reset keeps the old set until the new snapshot replaces it
          }
          this.revision = event.revision;
          if (this.synced) this.schedulePublish();
        }
      } catch (err) {
        // A refusal (a rotated key, say) ends the watch; channels keep their
        // last list, and the watch is tried again later in case it is fixed.
        this.deliver({ ok: false, error: err as RegistryClientError });
        this.retryTimer = setTimeout(() => {
          if (this.watch === watch && this.listeners.size > 0) this.start();
        }, this.retryAfterMs);
        this.retryTimer.unref();
      }
    })();
  }

  private schedulePublish(): void {
    if (this.publishScheduled) return;
    this.publishScheduled = true;
    setImmediate(() => {
      this.publishScheduled = false;
      void this.publish();
    });
  }

  private async publish(): Promise<void> {
    const seq = ++this.publishSeq;
    const { revision, panic } = this;
    // A draining instance takes no new calls: its calls in flight finish on their own.
    const usable = [...this.instances.values()].filter((i) => !i.draining && (panic || i.health === "healthy"));
    const resolved = await Promise.all(usable.map(resolveInstance));
    if (seq !== this.publishSeq) return; // a newer set is on its way
    this.deliver({ ok: true, instances: resolved.filter((r) => r.addresses.length > 0), revision, panic });
  }

  private deliver(set: HealthySet): void {
    this.latest = set;
    for (const listener of [...this.listeners]) {
      try {
        listener(set);
      } catch {
        // One subscriber's failure must not starve the others.
      }
    }
  }
}

/** Resolves a hostname instance to its addresses (IP literals as they are); none if the lookup fails. */
async function resolveInstance(instance: Instance): Promise<ResolvedInstance> {
  if (isIP(instance.host)) return { instance, addresses: [{ host: instance.host, port: instance.port }] };
  try {
    const found = await lookup(instance.host, { all: true });
    return { instance, addresses: found.map((a) => ({ host: a.address, port: instance.port })) };
  } catch {
    return { instance, addresses: [] };
  }
}
