import { hash, randomFillSync, timingSafeEqual } from "node:crypto";

const TOKEN_BYTES = 32;
/** Random bytes for the next 128 tokens, drawn in one call (as Node does for randomUUID). */
const tokenPool = Buffer.allocUnsafeSlow(TOKEN_BYTES * 128);
let tokenOffset = tokenPool.length;

/** A fresh instance token: 32 random bytes, base64url. */
export function newToken(): string {
  if (tokenOffset === tokenPool.length) {
    randomFillSync(tokenPool);
    tokenOffset = 0;
  }
  const end = tokenOffset + TOKEN_BYTES;
  const token = tokenPool.toString("base64url", tokenOffset, end);
  tokenPool.fill(0, tokenOffset, end); // a handed-out token's bytes do not stay in memory
  tokenOffset = end;
  return token;
}

/**
 * SHA-256 of a token or key, the only form the registry keeps: its 32 bytes
 * as a latin1 string (one character per byte). Node's one-shot `crypto.hash`
 * hands back a string faster than a Buffer (each Buffer made in C++ gets a
 * backing store of its own, which also drives the GC), and a 32-character
 * string is the most compact form to
 * keep per instance. Stores write it as bytes (`Buffer.from(hash, "latin1")`).
 */
export function hashSecret(secret: string): string {
  return hash("sha256", secret, "binary"); // "binary" is latin1
}

/**
 * A registration key's identity as instances record it: the first 16 hex
 * digits of its SHA-256, enough to tell an operator's keys apart, and
 * nothing that helps guess a key of 16 or more random characters. Taken
 * from the key's hash (`hashSecret`, which `RegistrationKeys.match` answers
 * with), so a Register hashes its key once.
 *
 * @example keyIdOf(keys.match(presented)) // "3f2a…": 16 hex digits
 */
export function keyIdOf(keyHash: string): string {
  let id = "";
  for (let i = 0; i < 8; i++) id += keyHash.charCodeAt(i).toString(16).padStart(2, "0");
  return id;
}

/** The presented and the stored digest, compared here: no Buffer per check. Used synchronously only. */
const presentedDigest = Buffer.allocUnsafeSlow(32);
const storedDigest = Buffer.allocUnsafeSlow(32);

/**
 * Constant-time comparison of a presented secret with a stored hash. Hashing
 * first makes both sides the same length, so neither length nor content leaks.
 * A stored hash that is not 32 bytes ("" from history) matches nothing.
 */
export function secretMatches(presented: string, storedHash: string): boolean {
  presentedDigest.write(hashSecret(presented), "latin1");
  storedDigest.fill(0).write(storedHash, "latin1");
  const equal = timingSafeEqual(presentedDigest, storedDigest) && storedHash.length === 32;
  presentedDigest.fill(0);
  return equal;
}

/**
 * Holds the accepted registration keys (several during a rotation) as
 * hashes. `replace` swaps them while the server runs (SIGHUP): a removed key
 * is refused from the next check on, and listeners learn which keys went so
 * streams opened with them can be ended. A key is known here only by its
 * hash, which is also its id.
 */
export class RegistrationKeys {
  private hashes: readonly Buffer[];
  private ids: ReadonlySet<string>;
  private readonly removalListeners: ((removedIds: ReadonlySet<string>) => void)[] = [];

  constructor(keys: readonly string[]) {
    this.hashes = keys.map((key) => Buffer.from(hashSecret(key), "latin1"));
    this.ids = new Set(this.hashes.map((h) => h.toString("latin1")));
  }

  /** Number of distinct keys accepted. */
  get size(): number {
    return this.ids.size;
  }

  /** True when `presented` is one of the keys; checks every key so timing says nothing. */
  accepts(presented: string): boolean {
    return this.match(presented) !== undefined;
  }

  /**
   * The id of the key `presented` is, or undefined. Compares with every key
   * (constant time per key) so timing tells neither which key nor whether.
   */
  match(presented: string): string | undefined {
    presentedDigest.write(hashSecret(presented), "latin1");
    let found: Buffer | undefined;
    for (const hash of this.hashes) if (timingSafeEqual(presentedDigest, hash)) found = hash;
    presentedDigest.fill(0);
    return found?.toString("latin1");
  }

  /** True while the key with this id is accepted. */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  /**
   * Accepts exactly `keys` from now on; tells the removal listeners which
   * ids are gone (when any). Returns how many keys came and went.
   */
  replace(keys: readonly string[]): { added: number; removed: number } {
    const hashes = keys.map((key) => Buffer.from(hashSecret(key), "latin1"));
    const ids = new Set(hashes.map((h) => h.toString("latin1")));
    const removed = new Set([...this.ids].filter((id) => !ids.has(id)));
    const added = [...ids].filter((id) => !this.ids.has(id)).length;
    this.hashes = hashes;
    this.ids = ids;
    if (removed.size > 0) for (const listener of this.removalListeners) listener(removed);
    return { added, removed: removed.size };
  }

  /** Calls `listener` with the ids of the keys each `replace` removed. */
  onRemoved(listener: (removedIds: ReadonlySet<string>) => void): void {
    this.removalListeners.push(listener);
  }
}
