import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { addressGroup, peerHost } from "../api/peer-address.js";

/** The setting a refused connection ran into. */
export type ConnectionQuota = "MAX_CONNECTIONS" | "MAX_CONNECTIONS_PER_ADDRESS";

/** Options of {@link ConnectionLimits}. */
export interface ConnectionLimitsOptions {
  /** Connections open at once, every address together. */
  readonly maxConnections: number;
  /** Connections open at once from one remote address. */
  readonly maxConnectionsPerAddress: number;
  /** Told of each refusal (metrics, a rate-limited log line). Must not throw. */
  readonly onRefused?: (quota: ConnectionQuota, address: string) => void;
}

/**
 * Caps on open connections, total and per remote address, shared by every
 * listener of the process (PORT and HTTP_PORT draw on the same file
 * descriptors). A connection over a cap is closed as it is accepted, before
 * it costs a TLS handshake or a buffer; established connections are never
 * touched, so a flood of new sockets cannot push out the clients already
 * served, and the per-address cap keeps one host from taking the whole
 * total.
 */
export class ConnectionLimits {
  private total = 0;
  private readonly perAddress = new Map<string, number>();

  constructor(private readonly options: ConnectionLimitsOptions) {}

  /** Open connections counted now. */
  get open(): number {
    return this.total;
  }

  /**
   * Counts a newly accepted socket until it closes, or closes it at once and
   * returns the quota it ran into.
   */
  admit(socket: Socket): ConnectionQuota | undefined {
    // IPv6 by /64: one host is usually given a whole /64, and could otherwise
    // open its per-address share from each of 2^64 addresses.
    const address = addressGroup(peerHost(socket.remoteAddress ?? ""));
    const fromAddress = this.perAddress.get(address) ?? 0;
    let quota: ConnectionQuota | undefined;
    if (this.total >= this.options.maxConnections) quota = "MAX_CONNECTIONS";
    else if (fromAddress >= this.options.maxConnectionsPerAddress) quota = "MAX_CONNECTIONS_PER_ADDRESS";
    if (quota !== undefined) {
      socket.on("error", () => {});
      socket.destroy();
      this.options.onRefused?.(quota, address);
      return quota;
    }
    this.total++;
    this.perAddress.set(address, fromAddress + 1);
    socket.once("close", () => {
      this.total--;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    });
    return undefined;
  }
}

/** The largest automatic MAX_CONNECTIONS, whatever the file limit (node raises it to the hard limit, often huge). */
const AUTO_MAX_CONNECTIONS = 50_000;
/** The automatic MAX_CONNECTIONS where the file limit cannot be read (not Linux). */
const UNKNOWN_LIMIT_MAX_CONNECTIONS = 10_000;

/**
 * MAX_CONNECTIONS and MAX_CONNECTIONS_PER_ADDRESS as configured, with 0
 * meaning "derive it": three quarters of the process's open-file limit
 * (the rest stays for the store, log files, probes and the listeners
 * themselves, so the server can still open what it needs when the cap is
 * full), and a quarter of that per address, so no single host can fill it.
 */
export function effectiveConnectionLimits(
  configured: { maxConnections: number; maxConnectionsPerAddress: number },
  fileLimit: number | undefined = openFileLimit(),
): { maxConnections: number; maxConnectionsPerAddress: number } {
  const maxConnections =
    configured.maxConnections > 0
      ? configured.maxConnections
      : fileLimit === undefined
        ? UNKNOWN_LIMIT_MAX_CONNECTIONS
        : Math.max(1, Math.min(AUTO_MAX_CONNECTIONS, Math.floor((fileLimit * 3) / 4)));
  const maxConnectionsPerAddress =
    configured.maxConnectionsPerAddress > 0 ? configured.maxConnectionsPerAddress : Math.max(1, Math.floor(maxConnections / 4));
  return { maxConnections, maxConnectionsPerAddress };
}

/** The soft RLIMIT_NOFILE of this process (Linux: /proc/self/limits); undefined where unknown. */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft === undefined || !/^\d+$/.test(soft) ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}
