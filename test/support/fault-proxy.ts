import { connect, createServer, type Socket } from "node:net";

/**
 * A TCP proxy on a loopback ephemeral port in front of one target, that can
 * cut the path the way a network partition does: `blackhole()` stops moving
 * bytes both ways (sockets paused, nothing read or written, so TCP
 * backpressure holds the peers' data) and holds new connections open
 * without connecting them anywhere, no reset, no FIN: the peers see silence.
 * `heal()` lets the held bytes through in order and connects the held
 * connections, as a partition that heals before TCP gives up. `reset()`
 * ends it the other way: every connection through the proxy is reset (RST)
 * and new ones go straight through, as when a peer or a middlebox gave up.
 */
export interface FaultProxy {
  /** Port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /** `http://127.0.0.1:<port>`, for an etcd endpoint. */
  readonly url: string;
  blackhole(): void;
  heal(): void;
  /** Resets every current connection (RST both ways) and lets new ones through. */
  reset(): void;
  /** New connections go to this target from now on (a load balancer moving to another backend); current ones stay. */
  retarget(host: string, port: number): void;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

interface Link {
  readonly client: Socket;
  upstream: Socket | undefined;
}

/** Starts a proxy to `targetHost:targetPort`. */
export async function startFaultProxy(targetHost: string, targetPort: number): Promise<FaultProxy> {
  const links = new Set<Link>();
  let target = { host: targetHost, port: targetPort };
  let blackholed = false;

  /** Copies `from` to `to` while the path is open; stops reading when `to` is full. */
  const forward = (from: Socket, to: Socket): void => {
    from.on("data", (chunk: Buffer) => {
      if (to.write(chunk)) return;
      from.pause();
      to.once("drain", () => {
        if (!blackholed) from.resume();
      });
    });
  };

  const connectUpstream = (link: Link): void => {
    const upstream = connect(target.port, target.host);
    link.upstream = upstream;
    upstream.on("error", () => link.client.destroy());
    upstream.on("close", () => link.client.destroy());
    forward(link.client, upstream);
    forward(upstream, link.client);
    link.client.resume();
  };

  const server = createServer({ pauseOnConnect: true }, (client) => {
    const link: Link = { client, upstream: undefined };
    links.add(link);
    client.on("error", () => link.upstream?.destroy());
    client.on("close", () => {
      link.upstream?.destroy();
      links.delete(link);
    });
    if (!blackholed) connectUpstream(link);
    // else: held, accepted but never answered, until heal()
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    blackhole() {
      blackholed = true;
      for (const link of links) {
        link.client.pause();
        link.upstream?.pause();
      }
    },
    heal() {
      blackholed = false;
      for (const link of links) {
        if (!link.upstream) connectUpstream(link);
        else {
          link.client.resume();
          link.upstream.resume();
        }
      }
    },
    reset() {
      blackholed = false;
      for (const link of links) {
        link.client.resetAndDestroy();
        link.upstream?.resetAndDestroy();
      }
    },
    retarget(host, port) {
      target = { host, port };
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const link of links) {
        link.client.destroy();
        link.upstream?.destroy();
      }
      await closed;
    },
  };
}
