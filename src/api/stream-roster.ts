import type { RegistrationKeys } from "../registry/credentials.js";
import type { ServiceRegistry } from "../registry/service-registry.js";
import { RegistryError } from "../registry/registry-error.js";
import { addTo, removeFrom, takeAll } from "../util/keyed-sets.js";
import type { Principal } from "./authenticator.js";

/** Ends one stream, with the reason. A transport's own function: it tells its client and calls `leave`. */
export type StreamEnd = (error: RegistryError) => void;

/** One quota on a transport's streams: the setting that sets it (named in the refusal and the metrics) and its value. */
export interface StreamQuota {
  readonly setting: string;
  /** Unlimited when undefined. */
  readonly max: number | undefined;
}

/** Options of {@link StreamRoster}. */
export interface StreamRosterOptions {
  /** Streams open at once, all connections together (admitted ones still opening included). */
  readonly total: StreamQuota;
  /** Streams open at once on one connection. */
  readonly perConnection?: StreamQuota;
  /**
   * Streams open at once under one instance's credentials, all connections
   * together. Keys have no such quota: every router shares one.
   */
  readonly perInstance?: StreamQuota;
  /** Said after the count in a refusal, where one transport's quota is not the only one of its name ("over HTTP"). */
  readonly scope?: string;
  /** Told of every refusal, by the quota's setting (for metrics); a throw is ignored. */
  readonly onRefused?: ((setting: string) => void) | undefined;
}

interface Listed {
  readonly connection: string;
  principal?: Principal;
}

/**
 * The open streams of one transport (gRPC watches, HTTP `/watch`, xDS), and
 * what ends them besides their client: a reload that removes the key that
 * opened one, the removal of the instance whose credentials did, and
 * shutdown (`endAll`). It also holds the transport's quotas: in all and per
 * connection, counted from admission, before any credential is read, so a
 * refused stream costs nothing more; and per instance, once the credentials
 * say whose the stream is, so that one instance's token (which a leak gives
 * away more easily than the key) cannot take every place.
 *
 * A transport admits a stream, attaches the principal once its credentials
 * are checked (the stream may have waited for its resume point meanwhile),
 * and leaves when the stream ends, however it ends.
 *
 * @example
 * const refusal = roster.admit(end, call.getPeer());
 * if (refusal) return refuse(refusal);
 * // ...credentials checked, watch opened...
 * const revoked = roster.attach(end, principal);
 * if (revoked) return end(revoked);
 */
export class StreamRoster {
  private readonly listed = new Map<StreamEnd, Listed>();
  private readonly byKey = new Map<string, Set<StreamEnd>>();
  private readonly byInstance = new Map<string, Set<StreamEnd>>();
  private readonly byConnection = new Map<string, number>();

  constructor(
    private readonly keys: RegistrationKeys,
    private readonly registry: ServiceRegistry,
    private readonly options: StreamRosterOptions,
  ) {
    keys.onRemoved((ids) => {
      const error = keyRemoved();
      for (const id of ids) for (const end of takeAll(this.byKey, id)) end(error);
    });
    registry.on("instanceRemoved", (instance) => {
      const error = instanceRemoved();
      for (const end of takeAll(this.byInstance, instance.id)) end(error);
    });
  }

  /** Streams admitted and not yet left. */
  get size(): number {
    return this.listed.size;
  }

  /**
   * Counts a new stream on `connection` in; or, past a quota, counts
   * nothing and answers the RESOURCE_EXHAUSTED error to refuse it with.
   */
  admit(end: StreamEnd, connection: string): RegistryError | undefined {
    const { total, perConnection, scope, onRefused } = this.options;
    const onConnection = this.byConnection.get(connection) ?? 0;
    let refusal: { setting: string; open: string } | undefined;
    if (total.max !== undefined && this.listed.size >= total.max) {
      refusal = { setting: total.setting, open: `${this.listed.size} open${scope ? ` ${scope}` : ""}` };
    } else if (perConnection?.max !== undefined && onConnection >= perConnection.max) {
      refusal = { setting: perConnection.setting, open: `${onConnection} open on this connection` };
    }
    if (refusal) return this.refuse(refusal.setting, refusal.open);
    this.listed.set(end, { connection });
    this.byConnection.set(connection, onConnection + 1);
    return undefined;
  }

  /**
   * The RESOURCE_EXHAUSTED error a new stream of `principal` is refused with
   * by the per-instance quota, counted as a refusal (the caller refuses the
   * stream); undefined when it has room. `attach` asks too: a transport that can still answer with a
   * plain status before its stream starts (HTTP's 429) asks first.
   */
  instanceQuotaRefusal(principal: Principal): RegistryError | undefined {
    const max = this.options.perInstance?.max;
    if (principal.kind !== "instance" || max === undefined) return undefined;
    const open = this.byInstance.get(principal.instance.id)?.size ?? 0;
    if (open < max) return undefined;
    return this.refuse((this.options.perInstance as StreamQuota).setting, `${open} open with this instance's credentials${this.options.scope ? ` ${this.options.scope}` : ""}`);
  }

  /**
   * Lists an admitted stream under the principal that opened it, so that
   * removing its key or instance ends it; answers the error to end it with
   * when that removal came while the stream was opening (waiting for its
   * resume point, or for a store read): listing first, then asking, misses
   * no removal. An instance principal always comes from this replica's
   * index (a replica that is behind catches up before it answers), so one
   * missing from it now was removed. Past the per-instance quota it lists
   * nothing and answers the refusal. Does nothing for a stream that has left.
   */
  attach(end: StreamEnd, principal: Principal): RegistryError | undefined {
    const entry = this.listed.get(end);
    if (!entry) return undefined;
    const refusal = this.instanceQuotaRefusal(principal);
    if (refusal) return refusal;
    entry.principal = principal;
    if (principal.kind === "key") {
      addTo(this.byKey, principal.keyId, end);
      return this.keys.has(principal.keyId) ? undefined : keyRemoved();
    }
    addTo(this.byInstance, principal.instance.id, end);
    return this.registry.has(principal.instance.id) ? undefined : instanceRemoved();
  }

  /** Forgets a stream that ended; a second call does nothing. */
  leave(end: StreamEnd): void {
    const entry = this.listed.get(end);
    if (!entry) return;
    this.listed.delete(end);
    const left = (this.byConnection.get(entry.connection) ?? 1) - 1;
    if (left > 0) this.byConnection.set(entry.connection, left);
    else this.byConnection.delete(entry.connection);
    const principal = entry.principal;
    if (principal?.kind === "key") removeFrom(this.byKey, principal.keyId, end);
    else if (principal?.kind === "instance") removeFrom(this.byInstance, principal.instance.id, end);
  }

  /** Ends every stream with `error` (UNAVAILABLE at shutdown). */
  endAll(error: RegistryError): void {
    for (const end of [...this.listed.keys()]) end(error);
  }

  private refuse(setting: string, open: string): RegistryError {
    try {
      this.options.onRefused?.(setting);
    } catch {
      // A metrics failure must not turn a refusal into a crash.
    }
    return new RegistryError("resource_exhausted", `${setting} reached (${open})`);
  }
}

function keyRemoved(): RegistryError {
  return new RegistryError("unauthenticated", "the registration key that opened this stream was removed");
}

function instanceRemoved(): RegistryError {
  return new RegistryError("unauthenticated", "the instance whose credentials opened this stream was removed");
}
