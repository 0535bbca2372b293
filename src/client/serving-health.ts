import type { Server } from "@grpc/grpc-js";
import { HealthService, type HealthStatus } from "../server/health-service.js";

/**
 * `grpc.health.v1.Health` (Check, Watch, List) for a service's own port, so
 * the registry's `grpc` checks and grpc-js clients with health checking can
 * ask it: SERVING while `check` says healthy, NOT_SERVING when it does not
 * (or throws) and from `drain()` on, whatever `check` says, so clients move
 * away before the port closes. The overall name "" and `names` are known;
 * others are NOT_FOUND (Watch: SERVICE_UNKNOWN).
 *
 * The registry's own `HealthService`, asking `check` at every Check (as the
 * HTTP endpoint does) rather than answering a status set beforehand. Watch
 * sends the status when it opens and when draining starts; `check` is not
 * polled for it.
 */
export class ServingHealth extends HealthService {
  private readonly names: readonly string[];
  private draining = false;

  constructor(
    private readonly check: () => boolean | Promise<boolean>,
    names: readonly string[] = [],
  ) {
    const known = ["", ...names];
    super(Object.fromEntries(known.map((name) => [name, "SERVING" as const])));
    this.names = known;
  }

  /**
   * Serves it on `server`. False, leaving the server as it is, when the
   * server already serves grpc.health.v1 (its own implementation stays).
   */
  override addToServer(server: Server): boolean {
    try {
      super.addToServer(server);
      return true;
    } catch (err) {
      // grpc-js refuses a second handler for a method: the caller serves health itself.
      if (/already provided/.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** From now on NOT_SERVING, to Check and to every Watch. Idempotent. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const name of this.names) this.setStatus(name, "NOT_SERVING");
  }

  /** Drains, and ends every Watch stream (UNAVAILABLE) after its NOT_SERVING. */
  close(): void {
    this.drain();
    this.endAll();
  }

  protected override async statusOf(): Promise<HealthStatus> {
    if (this.draining) return "NOT_SERVING";
    let ok: boolean;
    try {
      ok = await this.check();
    } catch {
      ok = false;
    }
    return ok && !this.draining ? "SERVING" : "NOT_SERVING";
  }
}
