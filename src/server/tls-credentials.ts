import { ServerCredentials } from "@grpc/grpc-js";
import type { TlsMaterial } from "../config/tls.js";

/**
 * gRPC server credentials: plaintext without TLS material; TLS with it; and
 * with a client CA, mTLS that refuses a client without a certificate signed
 * by that CA during the handshake.
 */
export function grpcServerCredentials(tls: TlsMaterial | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined);
}
