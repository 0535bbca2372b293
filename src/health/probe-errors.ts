/** The error code of a socket or undici error, if it has one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

// What each error code means, in the words a watcher sees. Error messages
// themselves are not passed on: they carry the address a name resolved to
// and, for some parser errors, bytes of the response.
const CODE_WORDS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection reset",
  UND_ERR_SOCKET: "connection closed by the server",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EADDRNOTAVAIL: "address not available",
  ETIMEDOUT: "connect timed out",
  UND_ERR_CONNECT_TIMEOUT: "connect timed out",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed",
  ENODATA: "host name has no address",
  UND_ERR_HEADERS_OVERFLOW: "response headers too large",
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: "response length mismatch",
};

export function describeProbeError(err: unknown): string {
  // Node 20 tries every address of a name and reports an AggregateError with an empty message.
  if (err instanceof AggregateError && err.errors.length > 0) return describeProbeError(err.errors[0]);
  const code = errorCode(err);
  if (code !== undefined) {
    const words = CODE_WORDS[code] ?? (code.startsWith("HPE_") ? "invalid HTTP response" : "probe failed");
    return `${words} (${code})`;
  }
  return err instanceof Error ? `probe failed (${err.name})` : "probe failed";
}
