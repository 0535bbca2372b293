/**
 * The probed side of the health-probing scenario, in its own process: HTTP
 * servers answering `GET /health` with 200 and a small JSON body over
 * keep-alive, and "blackholes" that accept connections and never answer.
 * All on 127.0.0.1, on ephemeral ports.
 *
 * argv[2]: JSON `{ healthy: number of HTTP ports, blackhole: number of blackhole ports }`.
 */
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import { emit, serveIpc } from "../lib/ipc.js";

const { healthy, blackhole } = JSON.parse(process.argv[2] ?? "{}") as { healthy: number; blackhole: number };
const BODY = Buffer.from('{"status":"ok"}');
let requests = 0;

function listen(server: Server | TcpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

const httpServers: Server[] = [];
for (let i = 0; i < healthy; i++) {
  const server = createServer((_req, res) => {
    requests++;
    res.writeHead(200, { "content-type": "application/json", "content-length": BODY.length });
    res.end(BODY);
  });
  // Like most production servers (nginx 75 s), keep idle connections longer than a probe interval.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  httpServers.push(server);
}
const held = new Set<Socket>();
const holes: TcpServer[] = [];
for (let i = 0; i < blackhole; i++) {
  holes.push(
    createTcpServer((socket) => {
      held.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => held.delete(socket));
    }),
  );
}
const healthyPorts = await Promise.all(httpServers.map(listen));
const blackholePorts = await Promise.all(holes.map(listen));

serveIpc({
  counters: () => ({ requests, heldConnections: held.size }),
  stop() {
    for (const s of httpServers) s.closeAllConnections();
    for (const s of held) s.destroy();
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { healthyPorts, blackholePorts });
