import { Metadata } from "@grpc/grpc-js";

/**
 * Credentials a client presents (SPEC 3): the registration key, or the id and
 * token an instance got from Register. Reads and watches accept either;
 * Register needs the key.
 */
export type RegistryAuth =
  | { readonly key: string }
  | { readonly instanceId: string; readonly token: string };

/** Credentials, or a function giving the current ones (read at every call). */
export type AuthSource = RegistryAuth | (() => RegistryAuth);

/** The gRPC metadata carrying `auth`. */
export function authMetadata(auth: AuthSource | undefined): Metadata {
  const md = new Metadata();
  const current = typeof auth === "function" ? auth() : auth;
  if (current === undefined) return md;
  if ("key" in current) {
    md.set("authorization", `Bearer ${current.key}`);
  } else {
    md.set("x-service-id", current.instanceId);
    md.set("x-service-token", current.token);
  }
  return md;
}
