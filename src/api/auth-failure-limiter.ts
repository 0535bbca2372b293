import type { Logger } from "pino";
import { addressGroup } from "./peer-address.js";

/**
 * Addresses logged one by one per log interval, all together. Past it their
 * counts go into one line per interval: an attacker spraying from a large
 * IPv6 block (a /48 holds 65,536 /64s) would otherwise write a line for each
 * guess.
 */
const ADDRESS_LINES_PER_INTERVAL = 100;

/** Options of {@link AuthFailureLimiter}. */
export interface AuthFailureLimiterOptions {
  /** Failures an address may make per minute, sustained (the bucket's refill). 0 turns the limiter off. */
  readonly failuresPerMinute: number;
  /** Failures an address may make at once before the rate applies (the bucket's size). */
  readonly burst: number;
  /** Addresses tracked at most; the least recently failing one is forgotten beyond this. Default 10000. */
  readonly maxAddresses?: number;
  /** Gets one warning per address per {@link logIntervalMs} with the counts. */
  readonly logger?: Logger;
  /** Default 60000 ms. */
  readonly logIntervalMs?: number;
  /** Milliseconds clock; tests pass their own. */
  readonly now?: () => number;
}

interface Entry {
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
  /** Failures and refusals since the last log line for this address. */
  failures: number;
  refused: number;
  loggedAt: number;
}

/**
 * Rate-limits failed authentications per caller address with a token bucket:
 * each failure takes a token; an address without one is refused before its
 * credential is checked, so guessing faster than the refill learns nothing.
 * Successful calls take nothing. IPv6 callers are grouped by /64, the block
 * one host or one customer usually gets: counting each address alone would
 * hand an attacker 2^64 buckets.
 *
 * Memory is bounded by `maxAddresses`: an address whose bucket is full again
 * holds no state and is dropped by the periodic sweep; beyond the bound the
 * least recently failing address is forgotten (it starts again with a full
 * bucket, which costs the attacker `maxAddresses` other addresses' worth of
 * failures first).
 *
 * @example
 * const limiter = new AuthFailureLimiter({ failuresPerMinute: 120, burst: 100, logger });
 * if (limiter.limited(peer)) throw tooMany(limiter.retryAfterMs(peer));
 * // ...on a wrong key:
 * limiter.failed(peer);
 */
export class AuthFailureLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly perMs: number;
  private readonly maxAddresses: number;
  private readonly logIntervalMs: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout | undefined;
  private evictedSinceWarning = 0;
  private lastEvictionWarning = Number.NEGATIVE_INFINITY;
  /** The address lines of the current log interval, and what was left out of them. */
  private linesSince = Number.NEGATIVE_INFINITY;
  private lines = 0;
  private unlogged = { addresses: 0, failures: 0, rateLimited: 0 };

  constructor(private readonly options: AuthFailureLimiterOptions) {
    this.perMs = options.failuresPerMinute / 60_000;
    this.maxAddresses = options.maxAddresses ?? 10_000;
    this.logIntervalMs = options.logIntervalMs ?? 60_000;
    this.now = options.now ?? Date.now;
    if (this.enabled) {
      // Flushes the counts of addresses that went quiet and forgets refilled ones.
      this.sweeper = setInterval(() => this.sweep(), this.logIntervalMs);
      this.sweeper.unref();
    }
  }

  /** False when configured off (AUTH_FAILURES_PER_MINUTE=0). */
  get enabled(): boolean {
    return this.options.failuresPerMinute > 0;
  }

  /** Addresses with state (failed recently). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * True when `peerHost` has no failure left: the caller is to be refused
   * without checking its credential. Counts the refusal for the log.
   */
  limited(peerHost: string | undefined): boolean {
    if (this.entries.size === 0) return false; // the common case costs one comparison
    const key = addressGroup(peerHost);
    const entry = this.entries.get(key);
    if (!entry) return false;
    const now = this.now();
    this.refill(entry, now);
    if (entry.tokens >= 1) return false;
    entry.refused += 1;
    this.maybeLog(key, entry, now);
    return true;
  }

  /** Milliseconds until `peerHost` may try again (0 when it may now). */
  retryAfterMs(peerHost: string | undefined): number {
    const entry = this.entries.get(addressGroup(peerHost));
    if (!entry || entry.tokens >= 1) return 0;
    return Math.ceil((1 - entry.tokens) / this.perMs);
  }

  /** Records a failed authentication from `peerHost`. */
  failed(peerHost: string | undefined): void {
    if (!this.enabled) return;
    const key = addressGroup(peerHost);
    const now = this.now();
    let entry = this.entries.get(key);
    if (entry) {
      this.refill(entry, now);
      this.entries.delete(key); // re-inserted below: the Map's order is the order of last failure
    } else {
      if (this.entries.size >= this.maxAddresses) this.evictOldest(now);
      entry = { tokens: this.options.burst, at: now, failures: 0, refused: 0, loggedAt: Number.NEGATIVE_INFINITY };
    }
    this.entries.set(key, entry);
    entry.tokens = Math.max(0, entry.tokens - 1);
    entry.failures += 1;
    this.maybeLog(key, entry, now);
  }

  /** Stops the sweep timer, and logs what the current interval left out of the log. */
  close(): void {
    clearInterval(this.sweeper);
    this.startInterval(Number.POSITIVE_INFINITY);
  }

  private refill(entry: Entry, now: number): void {
    entry.tokens = Math.min(this.options.burst, entry.tokens + (now - entry.at) * this.perMs);
    entry.at = now;
  }

  /**
   * One line per address per interval, with what happened since the last one
   * (never a credential); `due` logs an address forgotten before its interval
   * is over. Past {@link ADDRESS_LINES_PER_INTERVAL} the counts wait for the
   * interval's summary line instead.
   */
  private maybeLog(address: string, entry: Entry, now: number, due = false): void {
    this.startInterval(now);
    if (!due && now - entry.loggedAt < this.logIntervalMs) return;
    if (entry.failures === 0 && entry.refused === 0) return;
    if (this.lines < ADDRESS_LINES_PER_INTERVAL) {
      this.lines += 1;
      this.options.logger?.warn(
        { address, failures: entry.failures, rateLimited: entry.refused },
        "failed authentications from this address (refused unchecked once over AUTH_FAILURE_BURST)",
      );
    } else {
      this.unlogged.addresses += 1;
      this.unlogged.failures += entry.failures;
      this.unlogged.rateLimited += entry.refused;
    }
    entry.failures = 0;
    entry.refused = 0;
    entry.loggedAt = now;
  }

  /** Once an interval is over: its summary of the addresses left out, and a new budget of lines. */
  private startInterval(now: number): void {
    if (now - this.linesSince < this.logIntervalMs) return;
    const { addresses, failures, rateLimited } = this.unlogged;
    if (addresses > 0) {
      this.options.logger?.warn(
        { addresses, failures, rateLimited },
        `failed authentications from more addresses than are logged one by one (${ADDRESS_LINES_PER_INTERVAL} an interval): the rest, together`,
      );
    }
    this.unlogged = { addresses: 0, failures: 0, rateLimited: 0 };
    this.lines = 0;
    this.linesSince = now;
  }

  private sweep(): void {
    const now = this.now();
    this.startInterval(now);
    for (const [key, entry] of this.entries) {
      this.maybeLog(key, entry, now);
      this.refill(entry, now);
      if (entry.tokens >= this.options.burst && entry.failures === 0 && entry.refused === 0) this.entries.delete(key);
    }
  }

  private evictOldest(now: number): void {
    const oldest = this.entries.keys().next();
    if (oldest.done) return;
    const entry = this.entries.get(oldest.value) as Entry;
    this.maybeLog(oldest.value, entry, now, true);
    this.entries.delete(oldest.value);
    this.evictedSinceWarning += 1;
    if (now - this.lastEvictionWarning >= this.logIntervalMs) {
      this.options.logger?.warn(
        { addresses: this.maxAddresses, forgotten: this.evictedSinceWarning },
        "failed authentications come from more addresses than the limiter tracks: forgetting the least recent ones",
      );
      this.evictedSinceWarning = 0;
      this.lastEvictionWarning = now;
    }
  }
}

/** Re-exported: embedders and tests group addresses as the limiter does. */
