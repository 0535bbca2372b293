import { invalidArgument } from "./registry-error.js";
import type { Instance, Selector } from "./types.js";

/** Keys a selector may name: the same as metadata keys. */
const SELECTOR_KEY = /^[A-Za-z0-9._/-]{1,63}$/;
/** At most as many entries as an instance's metadata can hold. */
const MAX_SELECTOR_ENTRIES = 64;
const MAX_SELECTOR_VALUE_BYTES = 512;

/**
 * A selector as a caller sent it, checked: keys shaped like metadata keys,
 * string values of at most metadata's size, at most as many entries as
 * metadata. INVALID_ARGUMENT naming `field` otherwise. Undefined or empty
 * selects every instance (answered as `undefined`, so callers skip matching).
 */
export function validSelector(source: Readonly<Record<string, unknown>> | undefined | null, field = "selector"): Selector | undefined {
  if (source == null) return undefined;
  const keys = Object.keys(source);
  if (keys.length === 0) return undefined;
  if (keys.length > MAX_SELECTOR_ENTRIES) throw invalidArgument(field, `must have at most ${MAX_SELECTOR_ENTRIES} entries`);
  const selector: Record<string, string> = {};
  for (const key of keys) {
    const value = source[key];
    if (!SELECTOR_KEY.test(key)) throw invalidArgument(field, `key ${JSON.stringify(key.slice(0, 80))} must match [A-Za-z0-9._/-]{1,63}`);
    if (typeof value !== "string") throw invalidArgument(`${field}.${key}`, "must be a string");
    if (Buffer.byteLength(value, "utf8") > MAX_SELECTOR_VALUE_BYTES) {
      throw invalidArgument(`${field}.${key}`, `must be at most ${MAX_SELECTOR_VALUE_BYTES} bytes`);
    }
    Object.defineProperty(selector, key, { value, enumerable: true });
  }
  return selector;
}

/** True when `instance`'s metadata has every key of `selector` with exactly its value. */
export function matchesSelector(instance: Instance, selector: Selector | undefined): boolean {
  if (selector === undefined) return true;
  const metadata = instance.metadata;
  for (const key in selector) {
    if (!Object.hasOwn(metadata, key) || metadata[key] !== selector[key]) return false;
  }
  return true;
}
