// Every service type with its healthy / draining / total counts and panic
// mark, filterable by name and sortable; charts of the largest types.

import { useMemo, useState } from "preact/hooks";
import { healthyLines, sampleTimes, TimeChart } from "./charts.js";
import { html } from "./html.js";
import { useMedia, useSort, VirtualTable, sortRows } from "./virtual-list.js";

/** Types drawn on the overview chart: the largest by healthy instances in the latest sample. */
const CHARTED_TYPES = 5;

const COLUMNS = [
  { key: "serviceType", label: "Service type", sortable: true },
  { key: "healthy", label: "Healthy", sortable: true },
  { key: "draining", label: "Draining", sortable: true },
  { key: "total", label: "Total", sortable: true },
];

function valueOf(s, key) {
  if (key === "healthy") return s.healthyCount;
  if (key === "draining") return s.drainingCount;
  if (key === "total") return s.totalCount;
  return s.serviceType;
}

/** The services page. `version` is the store's, so the memos follow it. */
export function ServicesView({ store, version, series }) {
  const [filter, setFilter] = useState("");
  const [sort, onSort] = useSort({ key: "serviceType", dir: 1 });
  const narrow = useMedia("(max-width: 640px)");
  const services = store.services();
  const rows = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    const shown = needle === "" ? services : services.filter((s) => s.serviceType.includes(needle));
    return sortRows(shown, sort, valueOf, (s) => s.serviceType);
  }, [services, filter, sort]);
  const totals = useMemo(
    () => services.reduce((t, s) => ({ healthy: t.healthy + s.healthyCount, total: t.total + s.totalCount }), { healthy: 0, total: 0 }),
    [services],
  );
  const charted = useMemo(() => {
    const latest = series.samples.at(-1)?.healthy ?? {};
    return Object.keys(latest).sort((a, b) => latest[b] - latest[a] || a.localeCompare(b)).slice(0, CHARTED_TYPES);
  }, [series.samples]);
  const times = useMemo(() => sampleTimes(series.samples), [series.samples]);
  const lines = useMemo(() => healthyLines(series.samples, charted), [series.samples, charted]);
  const lag = useMemo(() => [{ label: "probe lag p99", values: series.samples.map((s) => s.probeLagP99Ms) }], [series.samples]);

  const cell = (s, key) => {
    if (key === "serviceType")
      return html`<a href=${`#/service/${encodeURIComponent(s.serviceType)}`} class="type-link">${s.serviceType}</a>
        ${s.panic ? html`<span class="badge panic" title="fewer than the panic threshold of its instances are healthy: clients get all of them">panic</span>` : null}`;
    if (key === "healthy")
      return html`<span class=${s.healthyCount < s.totalCount ? "count warn" : "count"}>${s.healthyCount}</span>
        <span class="meter" aria-hidden="true"><span style=${{ width: `${s.totalCount ? (100 * s.healthyCount) / s.totalCount : 0}%` }}></span></span>`;
    if (key === "draining") return html`<span class=${s.drainingCount ? "count draining" : "count muted"}>${s.drainingCount}</span>`;
    return html`<span class="count">${s.totalCount}</span>`;
  };

  return html`<section class="view" aria-labelledby="services-title">
    <div class="view-head">
      <h2 id="services-title">Services</h2>
      <p class="summary">${services.length} type${services.length === 1 ? "" : "s"}, ${totals.healthy} of ${totals.total} instances healthy</p>
    </div>
    <div class="charts">
      <${TimeChart} title="Healthy instances (largest types)" times=${times} lines=${lines} />
      <${TimeChart} title="Probe schedule lag p99" times=${times} lines=${lag} unit=" ms" />
    </div>
    ${series.error ? html`<p class="error small">charts: ${series.error}</p>` : null}
    <div class="toolbar">
      <label class="field">Filter <input type="search" value=${filter} placeholder="service type" onInput=${(e) => setFilter(e.currentTarget.value)} /></label>
      <span class="muted small" aria-live="polite">${rows.length === services.length ? "" : `${rows.length} shown`}</span>
    </div>
    <${VirtualTable} label="Service types" className="services-table" columns=${COLUMNS} rows=${rows} rowKey=${(s) => s.serviceType}
      rowHeight=${narrow ? 44 : 36} sort=${sort} onSort=${onSort} cell=${cell} resetKey=${`${filter}\u0000${sort.key}${sort.dir}`}
      rowClass=${(s) => (store.changedTypes.has(s.serviceType) ? "changed" : "")}
      empty=${services.length === 0 ? "No instances are registered." : "No type matches the filter."} />
  </section>`;
}
