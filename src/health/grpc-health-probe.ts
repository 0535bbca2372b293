import { credentials, makeGenericClientConstructor, status, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import type { ProbeResult, ProbeTarget } from "./http-probe.js";
import { allowedAddresses, lookupAll } from "./probe-addresses.js";
import { AbortFanout, assertProbeTimeout, ProbeAttempt } from "./probe-attempt.js";
import { describeProbeError } from "./probe-errors.js";
import { PROBE_TARGET_DENIED, ProbeTargetPolicy } from "./probe-target-policy.js";

/** Limits and trust of a {@link GrpcHealthProber}. */
export interface GrpcHealthProberOptions {
  /** Default budget of one check (ms), name resolution and connecting included; a target's own `timeoutMs` wins. */
  readonly timeoutMs: number;
  readonly targetPolicy?: ProbeTargetPolicy;
  readonly resolve?: (hostname: string) => Promise<string[]>;
  /** PEM CA certificates trusted for TLS checks besides the system's (PROBE_CA_FILE). */
  readonly ca?: Buffer | undefined;
}

/** grpc.health.v1's client, from the same service definition the registry serves its own health with. */
const HealthClient = makeGenericClientConstructor(healthService, "Health");

type CheckResponse = { status?: string };
type CheckClient = InstanceType<typeof HealthClient> & {
  check(request: { service: string }, options: { deadline?: number }, callback: (err: ServiceError | null, response?: CheckResponse) => void): { cancel(): void };
};

/**
 * A gRPC check: `grpc.health.v1.Health/Check` on host:port, the way
 * Kubernetes' gRPC probe does it: one channel per check, closed after it,
 * so a probe never rides a connection that a previous one left in some
 * state, and an idle registry holds no connections. SERVING passes;
 * anything else fails with a reason in fixed words (the status, or the
 * call's status code), never the peer's error text, which may name the
 * addresses a host resolved to. Same target policy and name handling as
 * the HTTP prober: the channel dials the allowed address it was given, with
 * the name as authority (and TLS server name). Never rejects.
 */
export class GrpcHealthProber {
  readonly #timeoutMs: number;
  readonly #policy: ProbeTargetPolicy;
  readonly #resolve: (hostname: string) => Promise<string[]>;
  readonly #fanout = new AbortFanout();
  readonly #plaintext = credentials.createInsecure();
  readonly #tls: ChannelCredentials;

  constructor(options: GrpcHealthProberOptions) {
    assertProbeTimeout(options.timeoutMs);
    this.#timeoutMs = options.timeoutMs;
    this.#policy = options.targetPolicy ?? new ProbeTargetPolicy();
    this.#resolve = options.resolve ?? lookupAll;
    this.#tls = credentials.createSsl(options.ca ?? null);
  }

  async probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
    if (signal?.aborted) return { ok: false, reason: "aborted" };
    const timeoutMs = target.timeoutMs || this.#timeoutMs;
    const attempt = new ProbeAttempt(timeoutMs, signal, this.#fanout);
    try {
      const addresses = await allowedAddresses(target.host, this.#policy, this.#resolve, attempt);
      if (addresses.length === 0) return { ok: false, reason: PROBE_TARGET_DENIED };
      // The first allowed address: grpc-js would try a name's addresses itself, but only after resolving it again.
      return await this.#check(addresses[0] as string, target, attempt);
    } catch (err) {
      return { ok: false, reason: attempt.reason ?? describeProbeError(err) };
    } finally {
      attempt.dispose();
    }
  }

  #check(address: string, target: ProbeTarget, attempt: ProbeAttempt): Promise<ProbeResult> {
    const bare = target.host.startsWith("[") ? target.host.slice(1, -1) : target.host;
    const authority = `${bare.includes(":") ? `[${bare}]` : bare}:${target.port}`;
    const dial = `${address.includes(":") ? `[${address}]` : address}:${target.port}`;
    const client = new HealthClient(dial, target.tls ? this.#tls : this.#plaintext, {
      "grpc.default_authority": authority,
      ...(target.tls && bare !== address ? { "grpc.ssl_target_name_override": bare } : {}),
      // One call per channel: nothing to retry or keep alive.
      "grpc.enable_retries": 0,
      "grpc.service_config_disable_resolution": 1,
    }) as CheckClient;
    return new Promise<ProbeResult>((resolve) => {
      // No gRPC deadline: the attempt's own (which a freeze of the registry extends) cancels the call.
      const call = client.check({ service: target.grpcService ?? "" }, {}, (err, response) => {
        client.close();
        if (attempt.reason !== undefined) return resolve({ ok: false, reason: attempt.reason });
        if (err) return resolve({ ok: false, reason: callFailure(err, target) });
        const answered = response?.status ?? "UNKNOWN";
        resolve(answered === "SERVING" ? { ok: true, status: 0 } : { ok: false, reason: `grpc health ${answered}` });
      });
      attempt.track({ cancel: () => call.cancel() });
    });
  }
}

/** A failed Check call in fixed words: what the status code means for a health check. */
function callFailure(err: ServiceError, target: ProbeTarget): string {
  switch (err.code) {
    case status.NOT_FOUND:
      return `grpc health: service ${JSON.stringify((target.grpcService ?? "").slice(0, 80))} unknown to the server (NOT_FOUND)`;
    case status.UNIMPLEMENTED:
      return "grpc.health.v1 not served (UNIMPLEMENTED)";
    case status.UNAVAILABLE:
      return "no gRPC connection (UNAVAILABLE)";
    default:
      return `grpc health check failed (${status[err.code] ?? err.code})`;
  }
}
