import { isIP } from "node:net";

/**
 * The caller's IP from a grpc-js peer string ("1.2.3.4:5678", "::1:5678",
 * "[::1]:5678"), with IPv4-mapped IPv6 unwrapped; undefined when unknown.
 */
export function peerHost(peer: string): string | undefined {
  let host = peer;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) host = bracketed[1] as string;
  else if (isIP(peer) === 0) host = peer.slice(0, Math.max(peer.lastIndexOf(":"), 0));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped) host = mapped[1] as string;
  return isIP(host) === 0 ? undefined : host;
}
