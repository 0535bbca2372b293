import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashSecret, keyIdOf, newToken, RegistrationKeys, secretMatches } from "../../src/registry/credentials.js";

const sha256 = (s: string): Buffer => createHash("sha256").update(s).digest();

describe("credentials", () => {
  it("hashes a secret to its SHA-256 digest bytes, whatever characters it holds", () => {
    for (const secret of [newToken(), "key with spaces", "ключ-ünïcödé-🔑", ""]) {
      expect(Buffer.from(hashSecret(secret), "latin1").equals(sha256(secret))).toBe(true);
      expect(hashSecret(secret)).toHaveLength(32);
    }
  });

  it("matches a presented secret against a stored hash, and nothing else", () => {
    const token = newToken();
    const stored = hashSecret(token);
    expect(secretMatches(token, stored)).toBe(true);
    expect(secretMatches(`${token}x`, stored)).toBe(false);
    expect(secretMatches(newToken(), stored)).toBe(false);
    expect(secretMatches(token, hashSecret(newToken()))).toBe(false);
    expect(secretMatches(token, stored)).toBe(true); // a failed check leaves nothing behind
    expect(secretMatches(token, "")).toBe(false); // an instance read back from history never authenticates
  });

  it("takes a key's id from its hash: the first 16 hex digits of its SHA-256, as stored instances carry it", () => {
    for (const key of [newToken(), "key with spaces", "ключ-ünïcödé-🔑"]) {
      expect(keyIdOf(hashSecret(key))).toBe(sha256(key).toString("hex").slice(0, 16));
    }
    const keys = new RegistrationKeys(["old-key", "new-key"]);
    expect(keyIdOf(keys.match("new-key") as string)).toBe(sha256("new-key").toString("hex").slice(0, 16));
  });

  it("accepts every key of a rotation and no other", () => {
    const keys = new RegistrationKeys(["old-key", "new-key"]);
    expect(keys.accepts("old-key")).toBe(true);
    expect(keys.accepts("new-key")).toBe(true);
    expect(keys.accepts("newer-key")).toBe(false);
    expect(keys.accepts("")).toBe(false);
  });
});
