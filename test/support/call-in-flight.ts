import { connect as http2Connect, type ClientHttp2Session } from "node:http2";

/**
 * Opens a Register on `port` whose message never arrives in full, so a
 * graceful stop has a call to wait for; resolves once the server has read
 * the call's frames (it answers a PING only after the frames before it).
 * Destroy the session to let it go.
 */
export async function holdRegisterInFlight(port: number, key: string): Promise<ClientHttp2Session> {
  const session = http2Connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  await new Promise<void>((resolve) => session.once("connect", () => resolve()));
  const stream = session.request({
    ":method": "POST",
    ":path": "/registry.v1.RegistryService/Register",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${key}`,
  });
  stream.on("error", () => {});
  stream.write(Buffer.from([0, 0, 0, 0, 100, 0x0a, 0x03])); // a 100-byte message, 2 bytes of it sent
  await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
  return session;
}
