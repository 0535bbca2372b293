import type { Metadata } from "@grpc/grpc-js";
import { bearerKey, type PresentedCredentials } from "../api/authenticator.js";

/** Reads presented credentials from gRPC metadata; the Authenticator checks them. */
export function credentialsFromMetadata(metadata: Metadata): PresentedCredentials {
  return {
    key: bearerKey(first(metadata, "authorization")),
    serviceId: first(metadata, "x-service-id"),
    serviceToken: first(metadata, "x-service-token"),
  };
}

function first(metadata: Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0];
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : value.toString("utf8");
}
