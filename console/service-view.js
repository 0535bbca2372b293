// One service type: its instances (host:port, health with the last failure
// reason, draining, metadata, age, last probe latency), sortable, filtered by
// a metadata selector the server applies; drain and unregister per instance.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { healthyLines, sampleTimes, TimeChart } from "./charts.js";
import { address, duration, matches, metadataText, millis, parseSelector, selectorText } from "./format.js";
import { html } from "./html.js";
import { sortRows, useMedia, useSort, VirtualTable } from "./virtual-list.js";

const DETAILS_REFRESH_MS = 10_000;
const DETAILS_AFTER_CHANGE_MS = 700;

const COLUMNS = [
  { key: "address", label: "Address", sortable: true },
  { key: "health", label: "Health", sortable: true },
  { key: "draining", label: "Draining", sortable: true },
  { key: "metadata", label: "Metadata", sortable: true },
  { key: "age", label: "Age", sortable: true },
  { key: "probe", label: "Last probe", sortable: true },
  { key: "actions", label: "Actions" },
];

/** The current time, renewed every `ms` (ages move without other changes). */
function useNow(ms) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

/**
 * GET /console/services/:type?selector=... now, when the selector changes,
 * soon after a change of the type, and every 10 s: probe details (failure reasons, last probe) go to the store;
 * the answer's instances are the rows until the live snapshot is in.
 */
function useDetails(api, store, type, selector) {
  const [state, setState] = useState({ instances: undefined, error: undefined });
  const reload = useRef(undefined);
  // A change of the type (a new instance, a failed probe) brings its probe details within a second.
  const changedAt = store.typeChanges.get(type);
  useEffect(() => {
    if (changedAt === undefined) return undefined;
    const timer = setTimeout(() => reload.current?.(), DETAILS_AFTER_CHANGE_MS);
    return () => clearTimeout(timer);
  }, [changedAt]);
  useEffect(() => {
    const controller = new AbortController();
    let stopped = false;
    setState({ instances: undefined, error: undefined });
    const query = selector === "" ? "" : `?selector=${encodeURIComponent(selector)}`;
    const load = async () => {
      try {
        const answer = await api.get(`/console/services/${encodeURIComponent(type)}${query}`, { signal: controller.signal });
        if (stopped) return;
        store.setDetails(type, answer.instances, answer.panic);
        setState({ instances: answer.instances, error: undefined });
      } catch (err) {
        if (!stopped && err.name !== "AbortError") setState((s) => ({ ...s, error: err.message }));
      }
    };
    load();
    reload.current = load;
    const timer = setInterval(load, DETAILS_REFRESH_MS);
    return () => {
      stopped = true;
      reload.current = undefined;
      clearInterval(timer);
      controller.abort();
    };
  }, [api, store, type, selector]);
  return state;
}

/** The page of one service type. */
export function ServiceView({ api, store, version, type, selector, series, onAction, navigate }) {
  const parsed = useMemo(() => parseSelector(selector), [selector]);
  const details = useDetails(api, store, type, parsed.error ? "" : selectorText(parsed.selector));
  const [draft, setDraft] = useState(selector);
  const [draftError, setDraftError] = useState(undefined);
  useEffect(() => setDraft(selector), [selector]);
  const [sort, onSort] = useSort({ key: "address", dir: 1 });
  const narrow = useMedia("(max-width: 640px)");
  const now = useNow(5000);

  const instances = useMemo(() => {
    const live = store.synced ? store.instancesOf(type) : (details.instances ?? []);
    const wanted = parsed.selector ?? {};
    return live.filter((i) => matches(i.metadata, wanted));
  }, [version, details.instances, type, parsed]);
  const valueOf = (i, key) => {
    if (key === "health") return i.health === "HEALTHY" ? 0 : 1;
    if (key === "draining") return i.draining ? 1 : 0;
    if (key === "metadata") return metadataText(i.metadata);
    if (key === "age") return -Date.parse(i.registeredAt);
    if (key === "probe") return store.lastProbes.get(i.id)?.ms ?? Infinity;
    return `${i.host}:${String(i.port).padStart(5, "0")}`;
  };
  const rows = useMemo(() => sortRows(instances, sort, valueOf, (i) => i.id), [instances, sort]);
  const healthy = instances.filter((i) => i.health === "HEALTHY").length;
  const panic = store.panic.get(type) ?? false;

  const times = useMemo(() => sampleTimes(series.samples), [series.samples]);
  const lines = useMemo(() => healthyLines(series.samples, [type]), [series.samples, type]);
  const lag = useMemo(() => [{ label: "probe lag p99", values: series.samples.map((s) => s.probeLagP99Ms) }], [series.samples]);

  const apply = (e) => {
    e.preventDefault();
    const next = parseSelector(draft);
    if (next.error) return setDraftError(next.error);
    setDraftError(undefined);
    navigate(type, selectorText(next.selector));
  };

  const cell = (i, key) => {
    if (key === "address") return html`<span class="mono" title=${i.id}>${address(i)}</span>`;
    if (key === "health") {
      const reason = store.failureReasons.get(i.id);
      return i.health === "HEALTHY"
        ? html`<span class="badge ok">healthy</span>`
        : html`<span class="badge bad">unhealthy</span> <span class="reason" title=${reason ?? ""}>${reason ?? ""}</span>`;
    }
    if (key === "draining")
      return i.draining ? html`<span class="badge draining" title=${`since ${i.drainingSince ?? "?"}`}>draining</span>` : html`<span class="muted">no</span>`;
    if (key === "metadata") {
      const text = metadataText(i.metadata);
      return html`<span class="mono meta" title=${text}>${text || html`<span class="muted">–</span>`}</span>`;
    }
    if (key === "age") return html`<span title=${`registered ${i.registeredAt}`}>${duration(Math.max(0, now - Date.parse(i.registeredAt)))}</span>`;
    if (key === "probe") {
      const probe = store.lastProbes.get(i.id);
      if (!probe) return html`<span class="muted">–</span>`;
      return html`<span class=${probe.ok ? "" : "warn"} title=${`${probe.ok ? "passed" : "failed"} at ${probe.at}`}>${millis(probe.ms)}</span>`;
    }
    return html`<span class="actions">
      <button type="button" class="small" disabled=${i.draining} onClick=${() => onAction({ kind: "drain", instance: i })}
        aria-label=${`Drain ${address(i)}`}>Drain</button>
      <button type="button" class="small danger" onClick=${() => onAction({ kind: "unregister", instance: i })}
        aria-label=${`Unregister ${address(i)}`}>Unregister</button>
    </span>`;
  };

  return html`<section class="view" aria-labelledby="service-title">
    <div class="view-head">
      <a href="#/" class="back">← Services</a>
      <h2 id="service-title">${type} ${panic ? html`<span class="badge panic">panic</span>` : null}</h2>
      <p class="summary">${healthy} of ${instances.length} instance${instances.length === 1 ? "" : "s"} healthy${parsed.selector && selector ? ` matching ${selector}` : ""}</p>
    </div>
    <div class="charts">
      <${TimeChart} title=${`Healthy instances of ${type}`} times=${times} lines=${lines} />
      <${TimeChart} title="Probe schedule lag p99" times=${times} lines=${lag} unit=" ms" />
    </div>
    <form class="toolbar" onSubmit=${apply} role="search">
      <label class="field">Selector <input name="selector" value=${draft} placeholder="zone=eu-1,tier=web" spellcheck="false"
        onInput=${(e) => setDraft(e.currentTarget.value)} aria-invalid=${draftError ? "true" : undefined} /></label>
      <button type="submit">Apply</button>
      ${selector ? html`<button type="button" class="link" onClick=${() => navigate(type, "")}>Clear</button>` : null}
    </form>
    ${draftError ? html`<p class="error" role="alert">selector: ${draftError}</p>` : null}
    ${details.error ? html`<p class="error" role="alert">${details.error}</p>` : null}
    <${VirtualTable} label=${`Instances of ${type}`} className="instances-table" columns=${COLUMNS} rows=${rows} rowKey=${(i) => i.id}
      rowHeight=${narrow ? 96 : 38} sort=${sort} onSort=${onSort} cell=${cell} resetKey=${`${type}\u0000${selector}\u0000${sort.key}${sort.dir}`}
      rowClass=${(i) => [store.changed.has(i.id) ? "changed" : "", i.health === "HEALTHY" ? "" : "unhealthy", i.draining ? "is-draining" : ""].join(" ")}
      empty=${details.instances === undefined && !store.synced ? "Loading…" : "No instance of this type matches."} />
  </section>`;
}
