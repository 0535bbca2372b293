import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** A fresh instance token: 32 random bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** SHA-256 of a token or key: the only form the registry keeps. */
export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/**
 * Constant-time comparison of a presented secret with a stored hash. Hashing
 * first makes both sides the same length, so neither length nor content leaks.
 */
export function secretMatches(presented: string, storedHash: Buffer): boolean {
  return timingSafeEqual(hashSecret(presented), storedHash);
}

/**
 * Holds the accepted registration keys (several during a rotation) as hashes.
 */
export class RegistrationKeys {
  private readonly hashes: readonly Buffer[];

  constructor(keys: readonly string[]) {
    this.hashes = keys.map(hashSecret);
  }

  /** True when `presented` is one of the keys; checks every key so timing says nothing. */
  accepts(presented: string): boolean {
    const presentedHash = hashSecret(presented);
    let match = false;
    for (const hash of this.hashes) match = timingSafeEqual(presentedHash, hash) || match;
    return match;
  }
}
