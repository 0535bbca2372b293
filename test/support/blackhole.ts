import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";

/**
 * A TCP server on a loopback ephemeral port that accepts connections and
 * never answers: a host that is up but hung, as a prober or a client sees
 * it (the connect succeeds, then silence until its own deadline). For a
 * path that goes silent in the middle of a conversation, put
 * `startFaultProxy` (fault-proxy.ts) in front of a real peer instead.
 */
export interface Blackhole {
  readonly port: number;
  /** The listening server: await its `connection` event to know a peer got through. */
  readonly server: Server;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Destroys every held connection, stops listening, and waits for both. */
  close(): Promise<void>;
}

export async function startBlackhole(): Promise<Blackhole> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    get accepted() {
      return accepted;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const gone = [...sockets].map((socket) => (socket.destroyed ? Promise.resolve() : once(socket, "close")));
      for (const socket of sockets) socket.destroy();
      await Promise.all([closed, ...gone]);
    },
  };
}
