import { TYPE_URL, type DiscoveryRequest, type DiscoveryResponse } from "./envoy-protos.js";
import type { EncodedResource } from "./xds-resources.js";
import type { XdsHub, XdsSubscriber } from "./xds-hub.js";

/** The resource types served, in the order a client needs them when several are due at once. */
const SERVED = [TYPE_URL.listener, TYPE_URL.cluster, TYPE_URL.endpoints] as const;
/** Types whose every response is the whole set the client subscribed to: a name left out does not exist (xDS state of the world). */
const WHOLE_SET = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);

/** Resource names one stream may subscribe to, all types together. */
export const MAX_SUBSCRIBED_NAMES = 10_000;

/** What a session reports, for logs and metrics. */
export interface AdsSessionEvents {
  /** A response went out. */
  sent?(typeUrl: string, response: DiscoveryResponse): void;
  /** The client rejected a response (NACK); the previous version stays in force on its side. */
  rejected?(typeUrl: string, request: DiscoveryRequest): void;
}

interface Subscription {
  /** undefined: every service type (an empty first request for a whole-set type, as Envoy's wildcard). */
  names: ReadonlySet<string> | undefined;
  /** The nonce of the latest response; requests carrying an older one are stale. */
  nonce: string;
  /** The resources last sent, by name (the objects are the hub's, so identity tells a change). */
  sent: Map<string, EncodedResource>;
  /** A response is due (subscription changed, or its resources did). */
  due: boolean;
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

  /**
   * Takes one request. Throws a RangeError when it would take the stream's
   * subscriptions past MAX_SUBSCRIBED_NAMES.
   */
  onRequest(request: DiscoveryRequest): void {
    const typeUrl = request.type_url;
    // Other types (RDS: routes travel inside the Listener) have no resources here; asking for them is not an error.
    if (!(SERVED as readonly string[]).includes(typeUrl)) return;
    let sub = this.subscriptions.get(typeUrl);
    if (sub && request.response_nonce !== sub.nonce) return; // stale, or a first request sent again
    if (sub && request.error_detail) this.events.rejected?.(typeUrl, request);
    const names = request.resource_names.length === 0 && WHOLE_SET.has(typeUrl) && !sub?.names?.size ? undefined : new Set(request.resource_names);
    if (sub && sameNames(sub.names, names)) return; // an ACK or a NACK of what it asked for: nothing to send
    const count = names?.size ?? 0;
    if (this.subscribedNames - (sub?.names?.size ?? 0) + count > MAX_SUBSCRIBED_NAMES) {
      throw new RangeError(`resource_names: at most ${MAX_SUBSCRIBED_NAMES} resources per stream`);
    }
    this.subscribedNames += count - (sub?.names?.size ?? 0);
    if (!sub) {
      sub = { names, nonce: "", sent: new Map(), due: true };
      this.subscriptions.set(typeUrl, sub);
    } else {
      sub.names = names;
      sub.due = true;
    }
    this.followNames();
    this.flush();
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

  /** The stream drained: send what became due meanwhile. */
  resume(): void {
    this.blocked = false;
    this.flush();
  }

  typesChanged(types: ReadonlySet<string>, all: boolean): void {
    for (const [typeUrl, sub] of this.subscriptions) {
      if (sub.due) continue;
      if (all || sub.names === undefined || [...types].some((t) => sub.names?.has(t))) sub.due = this.differs(typeUrl, sub);
    }
    this.flush();
  }

  hubEnded(error: Error): void {
    this.end(error);
  }

  private flush(): void {
    for (const typeUrl of SERVED) {
      if (this.blocked) return;
      const sub = this.subscriptions.get(typeUrl);
      if (!sub?.due) continue;
      sub.due = false;
      const resources = this.current(typeUrl, sub);
      sub.sent = resources;
      sub.nonce = String(++this.nonces);
      const response: DiscoveryResponse = {
        version_info: String(this.hub.revision),
        resources: [...resources.values()],
        type_url: typeUrl,
        nonce: sub.nonce,
      };
      this.events.sent?.(typeUrl, response);
      if (!this.send(response)) this.blocked = true;
    }
  }

  /** Whether the subscription's resources are not what was last sent. */
  private differs(typeUrl: string, sub: Subscription): boolean {
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
