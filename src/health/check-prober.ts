import type { GrpcHealthProber } from "./grpc-health-probe.js";
import type { ProbeResult, ProbeTarget } from "./http-probe.js";
import { LazyHttpProber } from "./lazy-http-prober.js";
import type { ProbeTargetPolicy } from "./probe-target-policy.js";
import { TcpProber } from "./tcp-probe.js";

/** Options of a {@link CheckProber}. */
export interface CheckProberOptions {
  /** Default probe timeout (ms); a target's own `timeoutMs` wins. */
  readonly timeoutMs: number;
  readonly targetPolicy?: ProbeTargetPolicy | undefined;
  /** PEM CA certificates trusted for TLS gRPC checks besides the system's. */
  readonly ca?: Buffer | undefined;
}

/**
 * Probes each target the way its `kind` says: an HTTP GET (the default), a
 * grpc.health.v1 Check, or a TCP connect. The HTTP and gRPC clients are
 * loaded at their first probe, so a registry whose instances use neither
 * never loads them. Never rejects.
 */
export class CheckProber {
  readonly #options: CheckProberOptions;
  readonly #http: LazyHttpProber;
  readonly #tcp: TcpProber;
  #grpc: Promise<GrpcHealthProber> | undefined;
  #closed = false;

  /** `after`: as LazyHttpProber's, a promise to wait for before loading a client. */
  constructor(options: CheckProberOptions, after?: Promise<unknown>) {
    this.#options = options;
    const common = { timeoutMs: options.timeoutMs, ...(options.targetPolicy ? { targetPolicy: options.targetPolicy } : {}) };
    this.#http = new LazyHttpProber(common, after);
    this.#tcp = new TcpProber(common);
  }

  probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
    if (target.kind === "tcp") return this.#closed ? closed() : this.#tcp.probe(target, signal);
    if (target.kind === "grpc") return this.#probeGrpc(target, signal);
    return this.#http.probe(target, signal);
  }

  close(): void {
    this.#closed = true;
    this.#http.close();
  }

  async #probeGrpc(target: ProbeTarget, signal: AbortSignal | undefined): Promise<ProbeResult> {
    if (this.#closed) return closed();
    this.#grpc ??= import("./grpc-health-probe.js").then(({ GrpcHealthProber }) => new GrpcHealthProber(this.#options));
    let prober: GrpcHealthProber;
    try {
      prober = await this.#grpc;
    } catch (err) {
      return { ok: false, reason: `the gRPC probe client did not load: ${(err as Error).message}` };
    }
    return this.#closed ? closed() : prober.probe(target, signal);
  }
}

function closed(): Promise<ProbeResult> {
  return Promise.resolve({ ok: false, reason: "prober closed" });
}
