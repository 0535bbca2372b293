/**
 * The probed side of the health-probing scenario, in its own process: HTTP
 * servers answering `GET /health` with 200 and a small JSON body over
 * keep-alive, and "blackholes" that accept connections and never answer.
 * Each on an address of its own, as every registered instance must be (one
 * instance per address): a loopback IP of `127.<net>.0.0/16` and an
 * ephemeral port. A farm holds a bounded share of the addresses (the
 * scenario starts several), so its listening sockets and the connections to
 * them stay under the open-file limit.
 *
 * argv[2]: JSON `{ healthy: number of HTTP addresses, blackhole: number of blackhole addresses, net: second octet }`.
 */
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import { emit, serveIpc } from "../lib/ipc.js";

const { healthy, blackhole, net } = JSON.parse(process.argv[2] ?? "{}") as { healthy: number; blackhole: number; net: number };
/** The i-th address of this farm, in its own /16 of the loopback net. */
const hostOf = (i: number): string => `127.${net}.${(i >> 8) & 255}.${i & 255}`;
let hosts = 0;
const BODY = Buffer.from('{"status":"ok"}');
let requests = 0;

function listen(server: Server | TcpServer): Promise<{ host: string; port: number }> {
  const host = hostOf(hosts++);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve({ host, port: (server.address() as AddressInfo).port }));
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
const healthyAddresses = await Promise.all(httpServers.map(listen));
const blackholeAddresses = await Promise.all(holes.map(listen));

serveIpc({
  counters: () => ({ requests, heldConnections: held.size }),
  stop() {
    for (const s of httpServers) s.closeAllConnections();
    for (const s of held) s.destroy();
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { healthyAddresses, blackholeAddresses });
