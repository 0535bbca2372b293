// What the page knows, fed by the watch stream: every instance of every
// type, the panic flag per type, the last failure reason per instance, a
// bounded event log, and which rows just changed. Views read it and
// re-render at most once a frame however fast events come.

import { useEffect, useState } from "preact/hooks";
import { address } from "./format.js";

/** Events the log keeps (newest first); older ones fall off. */
const LOG_LIMIT = 300;
/** How long a changed row keeps its `changed` class. */
export const HIGHLIGHT_MS = 1500;

const CHANGES = new Set(["registered", "removed", "health_failed", "health_passed", "draining"]);

/**
 * The page's model of the registry, changed only by `onEvent` (the watch
 * stream, in order) and by the probe details and summaries the views fetch.
 *
 * @example
 * const store = new ConsoleStore();
 * const stream = new WatchStream({ api, from: { revision: 0, epoch: "" }, onEvent: (e) => store.onEvent(e), onStatus: (s) => store.setStatus(s) });
 */
export class ConsoleStore {
  constructor() {
    /** id → instance (InstanceJson). */
    this.instances = new Map();
    /** service type → (id → instance). */
    this.byType = new Map();
    /** The snapshot being received (after `open` without a resume point, or `reset`), swapped in at `synced`. */
    this.staging = undefined;
    this.synced = false;
    /** Changes at or below this revision are already in the state (a page resumed after a reload): logged, not applied. */
    this.appliedThrough = 0;
    this.failureReasons = new Map();
    this.lastProbes = new Map();
    this.panic = new Map();
    /** GET /services, shown until the stream's snapshot is in. */
    this.summaries = [];
    this.log = [];
    this.logSeq = 0;
    this.changed = new Map();
    this.changedTypes = new Map();
    /** service type → revision of its last change (kept: views refetch details when it moves). */
    this.typeChanges = new Map();
    this.status = { state: "connecting" };
    /** The revision of the last event (change, synced, bookmark), for the status line. */
    this.revision = 0;
    this.version = 0;
    this.listeners = new Set();
    this.frame = undefined;
    this.expiry = undefined;
    this.servicesMemo = { version: -1, list: [] };
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells the views, once per frame at most (or once per 50 ms where frames do not run: a hidden tab). */
  changedNow() {
    this.version++;
    if (this.frame !== undefined) return;
    const flush = () => {
      if (this.frame === undefined) return;
      clearTimeout(this.frame.timer);
      cancelAnimationFrame(this.frame.raf);
      this.frame = undefined;
      for (const listener of this.listeners) listener(this.version);
    };
    this.frame = { timer: setTimeout(flush, 50), raf: requestAnimationFrame(flush) };
  }

  setStatus(status) {
    this.status = status;
    this.changedNow();
  }

  /** GET /services: counts until the snapshot is in, and the panic flags. */
  setSummaries(services) {
    this.summaries = services;
    for (const s of services) this.panic.set(s.serviceType, s.panic);
    this.changedNow();
  }

  /** Probe details from GET /console/services/:type: last failure reasons and probe latencies. */
  setDetails(serviceType, instances, panic) {
    for (const i of instances) {
      if (i.failureReason) this.failureReasons.set(i.id, i.failureReason);
      else if (i.health === "HEALTHY") this.failureReasons.delete(i.id);
      if (i.lastProbe) this.lastProbes.set(i.id, i.lastProbe);
    }
    if (typeof panic === "boolean") this.panic.set(serviceType, panic);
    this.changedNow();
  }

  /** One event of the watch stream (see live.js), in order. */
  onEvent({ type, revision, data }) {
    if (type !== "open" && type !== "reset" && !data.snapshot && revision > 0) this.revision = revision;
    if (type === "open") {
      if (!data.resuming) this.staging = new Map();
    } else if (type === "reset") {
      this.staging = new Map();
      this.appliedThrough = 0;
      this.addLog({ revision, type, detail: "the registry could not resume this stream: fresh snapshot" });
    } else if (type === "registered" && data.snapshot) {
      (this.staging ?? (this.staging = new Map())).set(data.instance.id, data.instance);
      this.panic.set(data.instance.serviceType, data.panic === true);
    } else if (type === "synced") {
      this.installSnapshot(this.staging ?? new Map());
      this.staging = undefined;
      this.synced = true;
      this.addLog({ revision, type, detail: `snapshot of ${this.instances.size} instance${this.instances.size === 1 ? "" : "s"}` });
    } else if (CHANGES.has(type) && data.instance) {
      const { instance } = data;
      if (revision > this.appliedThrough) this.apply(type, instance, data, revision);
      this.addLog({
        revision,
        type,
        serviceType: instance.serviceType,
        id: instance.id,
        address: address(instance),
        detail: data.removalReason ?? data.failureReason ?? "",
      });
    } else {
      return; // bookmarks move the resume point only
    }
    this.changedNow();
  }

  /** Notes a line in the log that is not an event (e.g. a resume). */
  note(detail) {
    this.addLog({ revision: undefined, type: "note", detail });
    this.changedNow();
  }

  apply(type, instance, data, revision) {
    const now = Date.now();
    if (type === "removed") {
      this.remove(instance.id);
      this.failureReasons.delete(instance.id);
      this.lastProbes.delete(instance.id);
    } else {
      this.put(instance);
      if (type === "health_failed" && data.failureReason) this.failureReasons.set(instance.id, data.failureReason);
      if (type === "health_passed") this.failureReasons.delete(instance.id);
    }
    // The stream flags a change that leaves its type in panic; an unflagged one leaves it out of panic.
    this.panic.set(instance.serviceType, data.panic === true);
    this.changed.set(instance.id, now);
    this.changedTypes.set(instance.serviceType, now);
    this.typeChanges.set(instance.serviceType, revision);
    this.expireHighlights();
  }

  installSnapshot(snapshot) {
    this.instances = new Map();
    this.byType = new Map();
    for (const instance of snapshot.values()) this.put(instance);
  }

  put(instance) {
    const old = this.instances.get(instance.id);
    if (old && old.serviceType !== instance.serviceType) this.remove(old.id);
    this.instances.set(instance.id, instance);
    let members = this.byType.get(instance.serviceType);
    if (!members) this.byType.set(instance.serviceType, (members = new Map()));
    members.set(instance.id, instance);
  }

  remove(id) {
    const old = this.instances.get(id);
    if (!old) return;
    this.instances.delete(id);
    const members = this.byType.get(old.serviceType);
    members?.delete(id);
    if (members && members.size === 0) this.byType.delete(old.serviceType);
  }

  addLog(entry) {
    this.log.unshift({ ...entry, seq: ++this.logSeq, at: new Date() });
    if (this.log.length > LOG_LIMIT) this.log.length = LOG_LIMIT;
  }

  /** Drops highlights older than HIGHLIGHT_MS, then re-renders so their class goes. */
  expireHighlights() {
    if (this.expiry !== undefined) return;
    this.expiry = setTimeout(() => {
      this.expiry = undefined;
      const cutoff = Date.now() - HIGHLIGHT_MS;
      for (const map of [this.changed, this.changedTypes]) for (const [k, at] of map) if (at <= cutoff) map.delete(k);
      if (this.changed.size > 0 || this.changedTypes.size > 0) this.expireHighlights();
      this.changedNow();
    }, HIGHLIGHT_MS / 3);
  }

  /** Every type with its counts, from the live state once the snapshot is in (GET /services before). */
  services() {
    if (this.servicesMemo.version === this.version) return this.servicesMemo.list;
    let list;
    if (!this.synced) list = this.summaries.map((s) => ({ ...s, panic: this.panic.get(s.serviceType) ?? s.panic }));
    else {
      list = [];
      for (const [serviceType, members] of this.byType) {
        let healthyCount = 0;
        let drainingCount = 0;
        for (const i of members.values()) {
          if (i.health === "HEALTHY") healthyCount++;
          if (i.draining) drainingCount++;
        }
        list.push({ serviceType, healthyCount, totalCount: members.size, drainingCount, panic: this.panic.get(serviceType) ?? false });
      }
    }
    this.servicesMemo = { version: this.version, list };
    return list;
  }

  /** A type's instances as the stream knows them. */
  instancesOf(serviceType) {
    const members = this.byType.get(serviceType);
    return members ? [...members.values()] : [];
  }
}

/** Re-renders the calling component whenever the store changes; returns the store's version. */
export function useStore(store) {
  const [, setVersion] = useState(store.version);
  useEffect(() => {
    const unsubscribe = store.subscribe(setVersion);
    setVersion(store.version); // changes between the first render and this effect
    return unsubscribe;
  }, [store]);
  return store.version;
}
