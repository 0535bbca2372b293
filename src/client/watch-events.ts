import type { Instance, RemovalReason } from "../registry/types.js";

/** Where in the registry's history an event sits. */
interface At {
  /** Revision of the change, or the registry's revision for snapshot, reset, bookmark and probe. */
  readonly revision: number;
  /** The registry's data set; revisions of different epochs are unrelated. */
  readonly epoch: string;
}

/** Whether the change's service type is in panic after it (see GetByType's `panic`). */
interface Panic {
  /**
   * Fewer than the registry's panic threshold of the type's instances are
   * healthy: GetByType answers with all of them, and a client should spread
   * calls over every instance of the type, not only the healthy ones.
   */
  readonly panic: boolean;
}

/**
 * What `RegistryClient.watch()` yields.
 *
 * - `snapshot`: the complete set of instances at `revision`; replaces anything
 *   known before (first event, and after every `reset`). `panicTypes` names
 *   the service types in panic then.
 * - `reset`: the registry could not resume where the watch left off (its data
 *   was lost or replaced, or the gap left its history); a `snapshot` follows.
 * - `instanceRegistered`, `instanceRemoved`, `instanceDraining`,
 *   `healthCheckPassed`, `healthCheckFailed`: one committed change each, in
 *   revision order, each exactly once (health events are transitions);
 *   `panic` is the type's panic after the change. A Register that replaced
 *   the instance at its address gives the old one's `instanceRemoved`
 *   (reason `replaced`) and then the new one's `instanceRegistered`.
 * - `probe`: one probe result, only with `everyHealthCheck`; not a change.
 * - `bookmark`: nothing changed for a while; `revision` is a fresh resume point.
 */
export type RegistryWatchEvent =
  | ({ readonly type: "snapshot"; readonly instances: Instance[]; readonly panicTypes: readonly string[] } & At)
  | ({ readonly type: "reset" } & At)
  | ({ readonly type: "instanceRegistered"; readonly instance: Instance } & At & Panic)
  | ({ readonly type: "instanceRemoved"; readonly instance: Instance; readonly reason: RemovalReason } & At & Panic)
  | ({ readonly type: "instanceDraining"; readonly instance: Instance } & At & Panic)
  | ({ readonly type: "healthCheckPassed"; readonly instance: Instance } & At & Panic)
  | ({ readonly type: "healthCheckFailed"; readonly instance: Instance; readonly failureReason: string } & At & Panic)
  | ({ readonly type: "probe"; readonly instance: Instance; readonly passed: boolean; readonly failureReason?: string } & At)
  /** `panic`: on a watch of one service type, the type's panic now (see `Panic`). */
  | ({ readonly type: "bookmark" } & At & Panic);

/** The event types that are committed changes. */
export type RegistryChangeEvent = Extract<
  RegistryWatchEvent,
  { type: "instanceRegistered" | "instanceRemoved" | "instanceDraining" | "healthCheckPassed" | "healthCheckFailed" }
>;

/** True for the change events (not snapshot, reset, probe or bookmark). */
export function isChangeEvent(event: RegistryWatchEvent): event is RegistryChangeEvent {
  return (
    event.type === "instanceRegistered" ||
    event.type === "instanceRemoved" ||
    event.type === "instanceDraining" ||
    event.type === "healthCheckPassed" ||
    event.type === "healthCheckFailed"
  );
}
