import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "./load-config.js";
import { flagName, type Config } from "./settings.js";

/** Certificates and key read from the TLS_* files, checked. */
export interface TlsMaterial {
  /** PEM certificate chain, leaf first. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** PEM CA bundle; when set, clients must present a certificate it signed (mTLS). */
  readonly clientCa?: Buffer;
  /** The leaf certificate, for start-up logs (subject, expiry). */
  readonly leaf: X509Certificate;
}

type TlsSettings = Pick<Config, "tlsCertFile" | "tlsKeyFile" | "tlsClientCaFile">;

/**
 * Reads and checks TLS_CERT_FILE, TLS_KEY_FILE and TLS_CLIENT_CA_FILE;
 * undefined when TLS is off. Every problem (one of cert/key without the
 * other, a CA without them, a file missing or unreadable, not PEM, a key
 * that does not match the certificate) is a ConfigError of one line naming
 * the setting, so start-up stops before anything listens.
 */
export function loadTls(settings: TlsSettings): TlsMaterial | undefined {
  const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = settings;
  if (tlsCertFile === "" && tlsKeyFile === "") {
    if (tlsClientCaFile !== "") throw new ConfigError("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE (mTLS is TLS plus client certificates)");
    return undefined;
  }
  if (tlsCertFile === "" || tlsKeyFile === "") {
    const missing = tlsCertFile === "" ? "TLS_CERT_FILE" : "TLS_KEY_FILE";
    throw new ConfigError(`${missing} (${flagName(missing)}) is not set: TLS_CERT_FILE and TLS_KEY_FILE go together`);
  }
  const cert = read("TLS_CERT_FILE", tlsCertFile);
  const key = read("TLS_KEY_FILE", tlsKeyFile);
  const leaf = parse("TLS_CERT_FILE", tlsCertFile, () => new X509Certificate(cert), "a PEM certificate");
  const privateKey: KeyObject = parse("TLS_KEY_FILE", tlsKeyFile, () => createPrivateKey(key), "an unencrypted PEM private key");
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError(`TLS_KEY_FILE (${flagName("TLS_KEY_FILE")}) ${tlsKeyFile} is not the key of the certificate in TLS_CERT_FILE`);
  }
  if (tlsClientCaFile === "") return { cert, key, leaf };
  const clientCa = read("TLS_CLIENT_CA_FILE", tlsClientCaFile);
  parse("TLS_CLIENT_CA_FILE", tlsClientCaFile, () => new X509Certificate(clientCa), "a PEM CA certificate");
  return { cert, key, clientCa, leaf };
}

/** The PROBE_CA_FILE bundle, checked; undefined when unset (gRPC TLS checks then trust the system's CAs only). */
export function loadProbeCa(path: string): Buffer | undefined {
  if (path === "") return undefined;
  const ca = read("PROBE_CA_FILE", path);
  parse("PROBE_CA_FILE", path, () => new X509Certificate(ca), "a PEM CA certificate");
  return ca;
}

function read(env: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${env} (${flagName(env)}) cannot be read: ${(err as Error).message}`);
  }
}

function parse<T>(env: string, path: string, fn: () => T, what: string): T {
  try {
    return fn();
  } catch {
    throw new ConfigError(`${env} (${flagName(env)}) ${path} does not hold ${what}`);
  }
}
