import { performance } from "node:perf_hooks";
import type { ProbeResult, ProbeTarget } from "../health/http-probe.js";
import { PROBE_TARGET_DENIED } from "../health/probe-target-policy.js";

/** A probe function, as `ServiceRegistryOptions.probe` takes it. */
export type ProbeFn = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;

/** A probe's outcome as a bounded label: the failure reasons are free text, these are not. */
export type ProbeOutcome = "pass" | "http_status" | "timeout" | "connection" | "redirect" | "aborted" | "denied";

/**
 * Wraps a probe function so every probe reports its outcome and duration,
 * with no change to the scheduler or the prober.
 *
 * @example
 * const prober = new HttpProber({ timeoutMs: 2000 });
 * const probe = instrumentProbe((t, s) => prober.probe(t, s), (outcome, s) => metrics.onProbe(outcome, s));
 * new ServiceRegistry({ probe });
 */
export function instrumentProbe(
  probe: ProbeFn,
  onProbe: (outcome: ProbeOutcome, seconds: number, target: ProbeTarget, result: ProbeResult) => void,
): ProbeFn {
  return async (target, signal) => {
    const started = performance.now();
    const result = await probe(target, signal);
    onProbe(probeOutcome(result), (performance.now() - started) / 1000, target, result);
    return result;
  };
}

/** Classifies a result by the reasons HttpProber gives. */
export function probeOutcome(result: ProbeResult): ProbeOutcome {
  if (result.ok) return "pass";
  const reason = result.reason;
  if (/^HTTP \d+$/.test(reason)) return "http_status";
  if (reason.startsWith("timed out")) return "timeout";
  if (reason === "aborted" || reason === "prober closed") return "aborted";
  if (reason === PROBE_TARGET_DENIED) return "denied";
  if (/redirect/.test(reason)) return "redirect";
  return "connection";
}
