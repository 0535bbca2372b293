import type { Etcd3, Watcher } from "etcd3";
import type { Logger } from "pino";
import { settledWithin } from "../../util/settled-within.js";

/** What the watch tells its store: only about the watch in place, never one moved away. */
export interface MemberWatchListener {
  /** A response's events, in revision order. */
  data(events: unknown[]): void;
  /** The stream broke (etcd3 reconnects it to the same member unless it is moved). */
  disconnected(): void;
  connected(): void;
  /** etcd cancelled the watch for good (its start revision was compacted, say). */
  failed(error: Error): void;
}

/** Options of {@link MemberWatch}. */
export interface MemberWatchOptions {
  /** The key prefix watched. */
  readonly prefix: string;
  /** A client of that one etcd member. */
  readonly clientOf: (endpoint: string) => Etcd3;
  /** How long a retired watch's cancel may wait for its member's answer, ms. */
  readonly cancelTimeoutMs: number;
  readonly listener: MemberWatchListener;
  readonly logger?: Logger | undefined;
}

interface Place {
  readonly endpoint: string;
  /** The revision it started from. */
  readonly from: number;
  readonly client: Etcd3;
  readonly watcher: Watcher;
}

/**
 * The one etcd watch feeding a replica, on one member through a client of
 * its own: it stays where it was put (etcd3 would reconnect it to any
 * member, a frozen one included, where it waits forever), and moving it is
 * closing that client. A moved watch resumes after the last revision the
 * old one delivered, and the old one's events are not passed on, so nothing
 * is missed or seen twice. Which member to use is the caller's choice.
 */
export class MemberWatch {
  private place: Place | undefined;

  constructor(private readonly options: MemberWatchOptions) {}

  /** The member the watch is on; undefined before `start` and after `close`. */
  get endpoint(): string | undefined {
    return this.place?.endpoint;
  }

  /** Watches the prefix from revision `from` on `endpoint`. */
  start(from: number, endpoint: string): void {
    const client = this.options.clientOf(endpoint);
    // `watcher()`, not `create()`: the handle is needed before the watch
    // connects, to cancel a watch placed on a member that stops answering.
    const watcher = client.watch().prefix(this.options.prefix).startRevision(String(from)).withPreviousKV().watcher();
    const place: Place = { endpoint, from, client, watcher };
    this.place = place;
    const listener = this.options.listener;
    const current = (): boolean => this.place === place;
    watcher.on("data", (res) => {
      if (current()) listener.data(res.events);
    });
    watcher.on("disconnected", () => {
      if (current()) listener.disconnected();
    });
    watcher.on("connected", () => {
      if (current()) listener.connected();
    });
    watcher.on("error", (err: Error) => {
      if (current()) listener.failed(err);
    });
  }

  /**
   * Moves the watch to `endpoint`, resuming after `delivered`, the last
   * revision it passed on (or from where it started, if it passed on none).
   */
  moveTo(endpoint: string, delivered: number): void {
    const old = this.place;
    if (!old) return;
    const from = Math.max(old.from, delivered + 1);
    this.options.logger?.warn({ from: old.endpoint, to: endpoint, fromRevision: from }, "moving the etcd watch to another member");
    this.start(from, endpoint);
    void this.retire(old);
  }

  async close(): Promise<void> {
    const place = this.place;
    this.place = undefined;
    if (place) await this.retire(place);
  }

  /** Cancels a watch (bounded: the cancel waits for its member's answer) and closes its client. */
  private async retire(place: Place): Promise<void> {
    await settledWithin(place.watcher.cancel(), this.options.cancelTimeoutMs);
    place.client.close();
  }
}
