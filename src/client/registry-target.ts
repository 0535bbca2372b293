/** Keys a selector may name: the registry's rule for metadata keys. */
const SELECTOR_KEY = /^[A-Za-z0-9._/-]{1,63}$/;

/** What a `registry:///` target asks for: a service type and, from its query, a metadata selector. */
export interface RegistryTarget {
  readonly serviceType: string;
  /** Metadata every picked instance has (empty: every instance). */
  readonly selector: Readonly<Record<string, string>>;
  /** Names the type and selector in one canonical form (keys sorted): channels asking the same share one watch. */
  readonly key: string;
}

/**
 * Reads the path of a `registry:///` target, as grpc-js hands it over
 * (`billing?zone=eu-1&tier=web`): the service type before `?`, then
 * `key=value` pairs joined by `&` (percent-decoded as RFC 3986 says: `+` is
 * a plus sign, a space is `%20`), which
 * become an equality selector, several keys ANDed. Answers an error message
 * instead, naming what is wrong, for a target a channel cannot use: no type,
 * a pair without `=`, an empty or malformed key, a key given twice.
 *
 * @example
 * parseRegistryTarget("/billing?zone=eu-1") // { serviceType: "billing", selector: { zone: "eu-1" }, key: "billing?zone=eu-1" }
 */
export function parseRegistryTarget(path: string): RegistryTarget | { readonly error: string } {
  const trimmed = path.replace(/^\/+/, "");
  const at = trimmed.indexOf("?");
  const serviceType = at === -1 ? trimmed : trimmed.slice(0, at);
  if (serviceType === "") return { error: "target names no service type: use registry:///<service_type>[?key=value&...]" };
  const selector: Record<string, string> = {};
  const query = at === -1 ? "" : trimmed.slice(at + 1);
  for (const pair of query === "" ? [] : query.split("&")) {
    const eq = pair.indexOf("=");
    if (eq === -1) return { error: `selector term ${JSON.stringify(pair)} is not key=value` };
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(pair.slice(0, eq));
      value = decodeURIComponent(pair.slice(eq + 1));
    } catch {
      return { error: `selector term ${JSON.stringify(pair)} is not valid percent-encoding` };
    }
    if (!SELECTOR_KEY.test(name)) return { error: `selector key ${JSON.stringify(name)} must match [A-Za-z0-9._/-]{1,63}` };
    // Equality on one key cannot hold for two values: a repeat is a mistake, not an OR.
    if (Object.hasOwn(selector, name)) return { error: `selector key ${JSON.stringify(name)} is given twice` };
    Object.defineProperty(selector, name, { value, enumerable: true });
  }
  const sorted = Object.keys(selector).sort();
  const canonical = sorted.map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(selector[k] as string)}`).join("&");
  return { serviceType, selector, key: canonical === "" ? serviceType : `${serviceType}?${canonical}` };
}
