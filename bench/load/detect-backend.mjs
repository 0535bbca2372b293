/**
 * One backend instance of the failure-detection scenario, in a process of its
 * own so it can be SIGKILLed or SIGSTOPped: `fork()`ed by
 * bench/load/detect-driver.ts with plain node (no tsx: a process is spawned
 * per kill, and this one starts in a fraction of tsx's time).
 *
 * argv[2]: JSON `{ kind: "http"|"grpc"|"tcp"|"ttl"|"session", registry: "host:port", heartbeatMs }`.
 *
 * Every kind listens on 127.0.0.1 and answers the router's gRPC call
 * `/bench.Ping/Ping` (an empty message): `grpc` through a grpc-js server that
 * also serves grpc.health.v1 (grpc-health-check's HealthImplementation, as a
 * service using grpc-js would); the others through one node:http2 server that
 * also speaks HTTP/1.1 on the same port, for the registry's `GET /health` (`http`), or just its
 * listening port (`tcp`, `ttl`, `session`). Once listening it sends
 * `{ port }`; the driver registers it and sends `{ id, token }`; `ttl`
 * instances then call Heartbeat every `heartbeatMs`, `session` instances hold
 * one KeepAlive stream, as an instance of those kinds does. It sends
 * `{ ready: true }` once its first heartbeat was answered or its session was
 * accepted (other kinds: at once).
 */
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttp2Server } from "node:http2";
import { createServer as createNetServer } from "node:net";
import grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";

const { kind, registry, heartbeatMs } = JSON.parse(process.argv[2] ?? "{}");
const send = (message) => process.send?.(message);
const identity = (b) => b;
const EMPTY = Buffer.alloc(0);
process.on("disconnect", () => process.exit(0));

/** A protobuf message with one string field numbered 1 (HeartbeatRequest, KeepAliveRequest). */
function field1(text) {
  const bytes = Buffer.from(text);
  if (bytes.length > 127) throw new Error("field too long for a one-byte length");
  return Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
}

async function listenGrpc() {
  const server = new grpc.Server();
  new HealthImplementation({ "": "SERVING" }).addToServer(server);
  server.addService(
    { ping: { path: "/bench.Ping/Ping", requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    { ping: (_call, callback) => callback(null, EMPTY) },
  );
  return new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/**
 * HTTP/1.1 `GET /health` (the registry's probe) and gRPC Ping over h2c on one
 * port: the first byte tells them apart (an HTTP/2 client starts with the
 * preface, "PRI * HTTP/2.0"). node:http2's allowHTTP1 does this only over TLS.
 */
async function listenHttp2() {
  const body = Buffer.from('{"status":"ok"}');
  const frame = Buffer.from([0, 0, 0, 0, 0]); // an empty gRPC message
  const h2 = createHttp2Server();
  h2.on("stream", (stream) => {
    stream.resume();
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame);
    });
  });
  const h1 = createHttpServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  h1.keepAliveTimeout = 65_000;
  const server = createNetServer((socket) => {
    socket.on("error", () => undefined);
    socket.once("data", (chunk) => {
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === 0x50) return h2.emit("connection", socket); // node:http2 reads what the socket holds
      h1.emit("connection", socket);
      socket.resume();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server.address().port;
}

function instanceMetadata(id, token) {
  const md = new grpc.Metadata();
  md.set("x-service-id", id);
  md.set("x-service-token", token);
  return md;
}

function heartbeats(client, id, token) {
  const md = instanceMetadata(id, token);
  let first = true;
  const beat = () =>
    client.makeUnaryRequest("/registry.v1.RegistryService/Heartbeat", identity, identity, field1(id), md, { deadline: Date.now() + 5000 }, (err) => {
      if (err) process.stderr.write(`detect-backend: heartbeat failed: ${err.message}\n`);
      else if (first) {
        first = false;
        send({ ready: true });
      }
    });
  beat();
  setInterval(beat, heartbeatMs);
}

function session(client, id, token) {
  const stream = client.makeBidiStreamRequest("/registry.v1.RegistryService/KeepAlive", identity, identity, instanceMetadata(id, token), {});
  stream.once("data", () => send({ ready: true }));
  stream.on("data", () => undefined);
  stream.on("error", (err) => process.stderr.write(`detect-backend: session ended: ${err.message}\n`));
  stream.write(field1(id));
}

const port = kind === "grpc" ? await listenGrpc() : await listenHttp2();
process.on("message", ({ id, token }) => {
  if (kind === "ttl" || kind === "session") {
    const client = new grpc.Client(registry, grpc.credentials.createInsecure());
    (kind === "ttl" ? heartbeats : session)(client, id, token);
  } else send({ ready: true });
});
send({ port });
