import { Session } from "node:inspector/promises";

/** Which objects a heap profile samples (see `startHeapSampling`). */
export type SampledObjects = "all" | "promoted" | "kept";

let session: Session | undefined;
let sampledNow: SampledObjects = "all";

/**
 * IPC commands a bench server offers so a tool can take its sampling heap
 * profile (see `bench/investigations/promoted-heap.ts`).
 */
export const heapSamplingCommands = {
  /**
   * Starts V8's sampling heap profiler, sampling what `sampled` names:
   * - `all`: every allocation;
   * - `promoted`: what outlived the young generation (no scavenge freed it):
   *   what is kept, and what a mark-compact frees later;
   * - `kept`: what is still alive at the stop, after a full GC there (the
   *   server needs node --expose-gc).
   */
  async startHeapSampling({ sampled }: { sampled: SampledObjects }): Promise<void> {
    if (session) throw new Error("heap sampling already started");
    sampledNow = sampled;
    session = new Session();
    session.connect();
    await session.post("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: sampled !== "kept",
      includeObjectsCollectedByMinorGC: sampled === "all",
    });
  },
  /** Stops the sampling heap profiler and returns its profile. */
  async stopHeapSampling(): Promise<unknown> {
    if (!session) throw new Error("heap sampling was not started");
    if (sampledNow === "kept") {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (!gc) throw new Error("sampling what is kept needs node --expose-gc");
      gc();
    }
    const { profile } = await session.post("HeapProfiler.stopSampling");
    session.disconnect();
    session = undefined;
    return profile;
  },
};
