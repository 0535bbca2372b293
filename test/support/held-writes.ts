import { once } from "node:events";
import type { AbortState } from "../../src/registry/commit-queue.js";
import type { Change, RemovalReason } from "../../src/registry/types.js";
import { ServiceRegistry, type RegisterOptions, type Registration, type UnregisterOptions } from "../../src/registry/service-registry.js";
import type { RegisterInput } from "../../src/registry/validation.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { waitFor } from "./wait-for.js";

/**
 * A real MemoryStore whose commits can be held: a write then stays in flight
 * inside the core, past auth and validation, for as long as a test needs
 * (the fault is at the storage boundary, as FlakyStore's is).
 */
export class HeldStore extends MemoryStore {
  private held: { entered: () => void; waiting: (() => void)[] } | undefined;

  /** Holds the commits from now on; resolves when the first one arrives. */
  hold(): Promise<void> {
    return new Promise((resolve) => (this.held = { entered: resolve, waiting: [] }));
  }

  /** Lets the held commits (and later ones) through. */
  release(): void {
    const held = this.held;
    this.held = undefined;
    for (const go of held?.waiting ?? []) go();
  }

  override async commitBatch(changes: readonly Change[]): Promise<void> {
    const held = this.held;
    if (held) {
      held.entered();
      await new Promise<void>((resolve) => held.waiting.push(resolve));
    }
    return super.commitBatch(changes);
  }
}

/** A real registry that keeps the abort signal each write was handed, as a transport passed it through the API layer. */
export class SignalRecordingRegistry extends ServiceRegistry {
  readonly signals: (AbortState | undefined)[] = [];

  override register(input: RegisterInput, options: RegisterOptions = {}): Promise<Registration> {
    this.signals.push(options.signal);
    return super.register(input, options);
  }

  override unregister(id: string, reason?: RemovalReason, options: UnregisterOptions = {}): Promise<Change> {
    this.signals.push(options.signal);
    return super.unregister(id, reason, options);
  }

  /** The signal of the latest write, which must have one. */
  lastSignal(): AbortState {
    const signal = this.signals.at(-1);
    if (!signal) throw new Error("the latest write was handed no abort signal");
    return signal;
  }
}

/**
 * Resolves once `signal` has aborted (at once if it has): with its reason
 * when it is an AbortSignal (HTTP's), else with undefined once its state
 * says so (gRPC's reads its call's state, and tells nobody).
 */
export async function aborted(signal: AbortState): Promise<unknown> {
  if (!(signal instanceof AbortSignal)) return waitFor(() => signal.aborted, "the signal to abort", 5000);
  if (!signal.aborted) await once(signal, "abort");
  return signal.reason;
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
