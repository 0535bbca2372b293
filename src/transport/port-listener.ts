import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import type { ConnectionLimits } from "./connection-limits.js";

/** Where a connection goes once its protocol is known. */
export type ConnectionHandler = (socket: Socket) => void;

/** TLS for a listener: ALPN offers h2 and http/1.1; with `ca`, client certificates are required. */
export interface ListenerTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer | undefined;
}

/** Options of {@link PortListener}. */
export interface PortListenerOptions {
  /** Takes HTTP/2 connections (gRPC). Without it, every connection goes to `http`. */
  readonly grpc?: ConnectionHandler;
  /** Takes HTTP/1.x connections. */
  readonly http: ConnectionHandler;
  /** TLS terminated here; handlers get the decrypted socket. Plaintext when omitted. */
  readonly tls?: ListenerTls;
  /**
   * Deadline from accept for the protocol to be known: the TLS handshake, and
   * for HTTP/2 the whole client preface (the 24-byte magic and the first
   * SETTINGS frame); a connection that has not got that far is closed.
   * `serve` sets it from CONNECTION_PREFACE_TIMEOUT_MS.
   */
  readonly firstByteTimeoutMs?: number;
  /** Caps on open connections (total, per address), checked at accept. None when omitted. */
  readonly limits?: ConnectionLimits;
}

/** The client connection preface every HTTP/2 connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** HTTP/2 frame header length, the SETTINGS frame type, and the largest frame a peer may send before SETTINGS are agreed. */
const FRAME_HEADER = 9;
const SETTINGS = 0x4;
const DEFAULT_MAX_FRAME = 16_384;

/**
 * One TCP port for gRPC and HTTP/1.1, as the seed's examples use :4000 for
 * both: it accepts each connection itself and hands it to the gRPC server or
 * the HTTP server once it knows which protocol the client speaks. Over TLS,
 * ALPN says (h2 or http/1.1); in plaintext, the first bytes do (the HTTP/2
 * preface or anything else). A connection that says nothing is closed after
 * `firstByteTimeoutMs`, so idle sockets cannot pile up before a server owns them.
 */
export class PortListener {
  private readonly server: Server;
  /** Connections not yet handed over: closed here on `close()`. */
  private readonly undecided = new Set<Socket>();
  /** Every accepted connection still open (the TCP socket, under any TLS). */
  private readonly open = new Set<Socket>();
  /** TLS connections still in their handshake, by peer address: not handed over either. */
  private readonly handshaking = new Map<string, Socket>();
  private closed = false;
  private readonly timeoutMs: number;

  constructor(private readonly options: PortListenerOptions) {
    this.timeoutMs = options.firstByteTimeoutMs ?? 10_000;
    const tls = options.tls;
    if (tls) {
      const server = createTlsServer({
        cert: tls.cert,
        key: tls.key,
        ALPNProtocols: options.grpc ? ["h2", "http/1.1"] : ["http/1.1"],
        handshakeTimeout: this.timeoutMs,
        ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
      });
      server.on("secureConnection", (socket: TLSSocket) => {
        this.handshaking.delete(peerKey(socket));
        // A handshake that completes while closing comes too late.
        if (this.closed) return void socket.destroy();
        this.route(socket, socket.alpnProtocol);
      });
      // A failed handshake (a plaintext client, a bad certificate) concerns that client only.
      server.on("tlsClientError", (_err, socket) => socket.destroy());
      this.server = server;
    } else {
      this.server = createNetServer();
    }
    this.server.on("connection", (socket: Socket) => {
      // Refused at accept: closed before it costs a handshake or a buffer.
      if (options.limits?.admit(socket) !== undefined) return;
      this.open.add(socket);
      const key = peerKey(socket);
      if (tls) this.handshaking.set(key, socket);
      socket.on("close", () => {
        this.open.delete(socket);
        this.handshaking.delete(key);
      });
      if (!tls) this.route(socket, undefined);
    });
  }

  /** Binds and accepts; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Connections accepted whose protocol is not known yet. */
  get undecidedCount(): number {
    return this.undecided.size;
  }

  /**
   * Stops accepting and closes connections not yet handed over. Those handed
   * over are their server's to close (gracefully); the promise resolves once
   * every connection is gone. `destroyConnections()` ends the wait.
   */
  close(): Promise<void> {
    this.closed = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of [...this.undecided, ...this.handshaking.values()]) socket.destroy();
    this.undecided.clear();
    this.handshaking.clear();
    return closed;
  }

  /**
   * Cuts every connection still open. For after the servers' own graceful
   * shutdown: whatever a server left open (a client that never closes its
   * side) must not hold the port or the process.
   */
  destroyConnections(): void {
    for (const socket of this.open) socket.destroy();
  }

  /** `alpn` is the negotiated protocol over TLS (false when none), undefined in plaintext. */
  private route(socket: Socket, alpn: string | false | null | undefined): void {
    const { grpc, http } = this.options;
    // Errors of a connection we still hold (a reset before the first byte) end it quietly.
    socket.on("error", () => socket.destroy());
    if (!grpc) return http(socket);
    if (alpn === "http/1.1") return http(socket);
    // ALPN said h2: whatever comes is HTTP/2's to judge, but only once the preface is in.
    if (alpn === "h2") return this.sniff(socket, () => grpc(socket));
    this.sniff(socket, (isH2) => {
      if (isH2) {
        // HTTP/2 with prior knowledge over TLS (no ALPN): node:http2 answers a TLS socket
        // whose ALPN is not h2 with "403 Missing ALPN Protocol"; the preface says h2.
        if (alpn === false) (socket as TLSSocket).alpnProtocol = "h2";
        return grpc(socket); // node:http2 reads what the socket holds already
      }
      http(socket);
      // node:http takes the bytes put back only as 'data' events: let them flow.
      socket.resume();
    });
  }

  /**
   * Reads the first bytes, puts them back, and says whether they are the
   * HTTP/2 preface. For HTTP/2 it waits for the preface's SETTINGS frame too:
   * a peer that sends the magic and then nothing must not become a session
   * that only keepalive would ever end.
   */
  private sniff(socket: Socket, decided: (isH2: boolean) => void): void {
    this.undecided.add(socket);
    // A deadline, not an idle timer: a peer trickling the preface a byte at a time
    // must not hold an undecided connection for 24 timeouts.
    const deadline = setTimeout(() => socket.destroy(), this.timeoutMs);
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      // A prefix of the preface could still turn out to be HTTP/2: wait for more.
      if (isH2 && !prefaceComplete(seen)) return;
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.pause();
      clearTimeout(deadline);
      socket.unshift(seen);
      this.undecided.delete(socket);
      decided(isH2);
    };
    const onClose = (): void => {
      clearTimeout(deadline);
      this.undecided.delete(socket);
    };
    socket.on("data", onData);
    socket.on("close", onClose);
  }
}

/**
 * Whether `seen`, which starts with the preface magic (or a prefix of it),
 * holds the magic and the whole first frame. A first frame that is not
 * SETTINGS, or is oversized, counts as complete: node:http2 answers it with
 * a GOAWAY, which is not for the sniffer to imitate.
 */
function prefaceComplete(seen: Buffer): boolean {
  const header = H2_PREFACE.length;
  if (seen.length < header + FRAME_HEADER) return false;
  const length = seen.readUIntBE(header, 3);
  if (seen[header + 3] !== SETTINGS || length > DEFAULT_MAX_FRAME) return true;
  return seen.length >= header + FRAME_HEADER + length;
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}
