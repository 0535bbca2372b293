import { RegistryError } from "../registry/registry-error.js";
import { TYPE_URL, type DiscoveryRequest, type DiscoveryResponse } from "./envoy-protos.js";
import type { EncodedResource } from "./xds-resources.js";
import type { XdsHub, XdsSubscriber } from "./xds-hub.js";

/** The resource types served, in the order a client needs them when several are due at once. */
const SERVED = [TYPE_URL.listener, TYPE_URL.cluster, TYPE_URL.endpoints] as const;
/** Types whose every response is the whole set the client subscribed to: a name left out does not exist (xDS state of the world). */
const WHOLE_SET = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);

/** Resource names one stream may subscribe to, all types together. */
const MAX_SUBSCRIBED_NAMES = 10_000;
/** Longest resource name taken (service types are far shorter; this bounds what a stream holds). */
const MAX_NAME_LENGTH = 256;

/** What a session reports, for logs and metrics. */
export interface AdsSessionEvents {
  /** A response went out. */
  sent?(typeUrl: string, response: DiscoveryResponse): void;
  /** The client rejected a response (NACK; once per response); the previous version stays in force on its side. */
  rejected?(typeUrl: string, request: DiscoveryRequest): void;
}

interface Subscription {
  /** undefined: every service type (Envoy's wildcard: `*`, or an empty first request for a whole-set type). */
  names: ReadonlySet<string> | undefined;
  /** The client has named resources of this type: an empty list from now on means none, not every type. */
  named: boolean;
  /** The nonce of the latest response; requests carrying an older one are stale. */
  nonce: string;
  /** The nonce last NACKed: a client repeating its NACK is reported once. */
  nacked: string;
  /** The resources last sent, by name (the objects are the hub's, so identity tells a change). */
  sent: Map<string, EncodedResource>;
  /** A response is due: every subscribed resource (`"all"`), or these names only. */
  due: "all" | Set<string> | undefined;
}

/**
 * One ADS stream's side of the xDS protocol (state of the world), with no
 * gRPC in it: the handler hands it each DiscoveryRequest and gives it a
 * `send` that says whether the stream takes more now.
 *
 * - Subscriptions follow each request's resource_names, per type URL.
 * - A request whose response_nonce is not the latest one sent for its type
 *   is stale and ignored, as the protocol says; an ACK changes nothing; a
 *   NACK (error_detail set) is reported and nothing is resent: the client
 *   keeps the previous version it accepted, and the next change sends anew.
 * - version_info is the registry revision the resources reflect; every
 *   response has a nonce of its own.
 * - A change is checked against the changed types only. Listener and
 *   Cluster responses carry the whole subscribed set (the protocol reads a
 *   missing one as deleted); an assignment response after a change carries
 *   the changed assignments only (the protocol keeps the others).
 * - Changes are coalesced: a type URL is marked due, and due responses are
 *   built from the hub's current state when the stream can take them, so a
 *   slow client gets the latest state, not every step.
 */
export class AdsSession implements XdsSubscriber {
  private readonly subscriptions = new Map<string, Subscription>();
  private nonces = 0;
  private blocked = false;
  private subscribedNames = 0;

  constructor(
    private readonly hub: XdsHub,
    /** Writes a response; false when the stream is full (`resume()` once it drains). */
    private readonly send: (response: DiscoveryResponse) => boolean,
    private readonly end: (error: Error) => void,
    private readonly events: AdsSessionEvents = {},
  ) {}

  /** Whether a response waits for the stream to drain. */
  get isBlocked(): boolean {
    return this.blocked;
  }

  /** Takes one request. Throws a RegistryError for a request past the stream's bounds. */
  onRequest(request: DiscoveryRequest): void {
    const typeUrl = request.type_url;
    // Other types (RDS: routes travel inside the Listener) have no resources here; asking for them is not an error.
    if (!(SERVED as readonly string[]).includes(typeUrl)) return;
    let sub = this.subscriptions.get(typeUrl);
    if (sub && request.response_nonce !== sub.nonce) return; // stale, or a first request sent again
    if (sub && request.error_detail && sub.nacked !== sub.nonce) {
      sub.nacked = sub.nonce;
      this.events.rejected?.(typeUrl, request);
    }
    for (const name of request.resource_names) {
      if (name.length > MAX_NAME_LENGTH) throw new RegistryError("invalid_argument", `resource_names: a name is longer than ${MAX_NAME_LENGTH} characters`);
    }
    const wildcard =
      request.resource_names.includes("*") || (request.resource_names.length === 0 && WHOLE_SET.has(typeUrl) && !(sub?.named ?? false));
    const names = wildcard ? undefined : new Set(request.resource_names);
    if (sub && sameNames(sub.names, names)) return; // an ACK or a NACK of what it asked for: nothing to send
    const count = names?.size ?? 0;
    const before = sub?.names?.size ?? 0;
    if (this.subscribedNames - before + count > MAX_SUBSCRIBED_NAMES) {
      throw new RegistryError("resource_exhausted", `resource_names: at most ${MAX_SUBSCRIBED_NAMES} resources per stream`);
    }
    this.subscribedNames += count - before;
    if (!sub) {
      sub = { names, named: names !== undefined && names.size > 0, nonce: "", nacked: "", sent: new Map(), due: "all" };
      this.subscriptions.set(typeUrl, sub);
    } else {
      sub.names = names;
      sub.named ||= names !== undefined && names.size > 0;
      sub.due = "all";
    }
    this.followNames();
    this.flush();
  }

  /** The stream drained: send what became due meanwhile. */
  resume(): void {
    this.blocked = false;
    this.flush();
  }

  typesChanged(types: ReadonlySet<string>, all: boolean): void {
    for (const [typeUrl, sub] of this.subscriptions) {
      if (sub.due === "all") continue;
      if (all) {
        if (this.differsAll(typeUrl, sub)) sub.due = "all";
        continue;
      }
      for (const type of types) {
        if (sub.names !== undefined && !sub.names.has(type)) continue;
        if (this.hub.resource(typeUrl, type) === sub.sent.get(type)) continue;
        // Whole-set types resend everything; an assignment only what changed.
        if (WHOLE_SET.has(typeUrl)) {
          sub.due = "all";
          break;
        }
        const due: Set<string> = sub.due instanceof Set ? sub.due : new Set();
        due.add(type);
        sub.due = due;
      }
    }
    this.flush();
  }

  hubEnded(error: Error): void {
    this.end(error);
  }

  /** Tells the hub every service type this stream's subscriptions name (resource names are service types). */
  private followNames(): void {
    const types = new Set<string>();
    let wildcard = false;
    for (const sub of this.subscriptions.values()) {
      if (sub.names === undefined) wildcard = true;
      else for (const name of sub.names) types.add(name);
    }
    this.hub.follow(this, types, wildcard);
  }

  private flush(): void {
    for (const typeUrl of SERVED) {
      if (this.blocked) return;
      const sub = this.subscriptions.get(typeUrl);
      if (!sub?.due) continue;
      const due = sub.due;
      sub.due = undefined;
      let resources: EncodedResource[];
      if (due === "all") {
        sub.sent = this.current(typeUrl, sub);
        resources = [...sub.sent.values()];
      } else {
        resources = [];
        for (const name of due) {
          const resource = this.hub.resource(typeUrl, name);
          if (resource) {
            sub.sent.set(name, resource);
            resources.push(resource);
          } else sub.sent.delete(name); // gone: the client keeps it until its Cluster goes (state of the world)
        }
        if (resources.length === 0) continue;
      }
      sub.nonce = String(++this.nonces);
      const response: DiscoveryResponse = { version_info: String(this.hub.revision), resources, type_url: typeUrl, nonce: sub.nonce };
      this.events.sent?.(typeUrl, response);
      if (!this.send(response)) this.blocked = true;
    }
  }

  /** Whether any subscribed resource is not what was last sent (after a resync). */
  private differsAll(typeUrl: string, sub: Subscription): boolean {
    const now = this.current(typeUrl, sub);
    if (now.size !== sub.sent.size) return true;
    for (const [name, resource] of now) if (sub.sent.get(name) !== resource) return true;
    return false;
  }

  private current(typeUrl: string, sub: Subscription): Map<string, EncodedResource> {
    const resources = new Map<string, EncodedResource>();
    for (const name of sub.names ?? this.hub.serviceTypes()) {
      const resource = this.hub.resource(typeUrl, name);
      if (resource) resources.set(name, resource);
    }
    return resources;
  }
}

function sameNames(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.size !== b.size) return false;
  for (const name of a) if (!b.has(name)) return false;
  return true;
}
