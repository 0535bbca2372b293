import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { ProbeAttempt } from "./probe-attempt.js";
import type { ProbeTargetPolicy } from "./probe-target-policy.js";

/** Resolves a host name to every address it has, in the order to try them (`dns.lookup`). */
export async function lookupAll(hostname: string): Promise<string[]> {
  return (await lookup(hostname, { all: true })).map((a) => a.address);
}

/**
 * The addresses of `host` a probe may connect to, in the order to try them;
 * empty when the policy allows none. A name is resolved now, within the
 * attempt's deadline, and each address judged: what is checked is what is
 * connected to, so a name that changes its answer (DNS rebinding) gains
 * nothing.
 */
export async function allowedAddresses(
  host: string,
  policy: ProbeTargetPolicy,
  resolve: (hostname: string) => Promise<string[]>,
  attempt: ProbeAttempt,
): Promise<string[]> {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return policy.allows(bare) ? [bare] : [];
  let cancel: (reason: Error) => void = () => {};
  const cancelled = new Promise<never>((_resolve, reject) => (cancel = reject));
  attempt.track({ cancel });
  const addresses = await Promise.race([resolve(bare), cancelled]);
  return [...new Set(addresses)].filter((a) => policy.allows(a));
}

/** Socket errors that say this address takes no connection at all: the next address of the name may. */
export const NEXT_ADDRESS_CODES: ReadonlySet<string> = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "EAFNOSUPPORT"]);
