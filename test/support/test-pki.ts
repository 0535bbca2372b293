import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";

/** A PEM pair and where it was written. */
export interface Pem {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** A throwaway PKI made in the test: a CA, a server certificate for loopback, client certificates. */
export interface TestPki {
  readonly dir: string;
  readonly ca: Pem;
  /** Signed by `ca`, valid for 127.0.0.1, ::1 and localhost. */
  readonly server: Pem;
  /** Signed by `ca`, for client authentication. */
  readonly client: Pem;
  /** A client certificate from an unrelated CA. */
  readonly strangerClient: Pem;
}

const OPTS = { keyType: "ec" as const, algorithm: "sha256" };

async function caPair(name: string) {
  return generate([{ name: "commonName", value: name }], {
    ...OPTS,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
}

/** Makes the certificates with `selfsigned` (async since v5) and writes them to a temp directory. */
export async function makeTestPki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), "registry-pki-"));
  const write = (name: string, cert: string, key: string): Pem => {
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    writeFileSync(certFile, cert);
    writeFileSync(keyFile, key, { mode: 0o600 });
    return { cert, key, certFile, keyFile };
  };
  const ca = await caPair("registry test CA");
  const caPem = write("ca", ca.cert, ca.private);
  const signer = { ca: { cert: ca.cert, key: ca.private } };
  const server = await generate([{ name: "commonName", value: "localhost" }], {
    ...OPTS,
    ...signer,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }, { type: 7, ip: "::1" }] },
    ],
  });
  const client = await generate([{ name: "commonName", value: "router-1" }], {
    ...OPTS,
    ...signer,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true },
      { name: "extKeyUsage", clientAuth: true },
    ],
  });
  const stranger = await caPair("someone else");
  return {
    dir,
    ca: caPem,
    server: write("server", server.cert, server.private),
    client: write("client", client.cert, client.private),
    strangerClient: write("stranger", stranger.cert, stranger.private),
  };
}
