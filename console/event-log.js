// The running event log at the side: newest first, bounded (the store keeps
// the last 300). Each change shows its revision, so a gap would show.

import { clock } from "./format.js";
import { html } from "./html.js";

const LABELS = {
  registered: "registered",
  removed: "removed",
  health_failed: "unhealthy",
  health_passed: "healthy",
  draining: "draining",
  synced: "synced",
  reset: "reset",
  note: "note",
};

/** The event log of a store. */
export function EventLog({ store }) {
  return html`<aside class="log" aria-labelledby="log-title">
    <h2 id="log-title">Events <span class="muted small">(newest first)</span></h2>
    <ol class="log-list">
      ${store.log.map(
        (e) => html`<li key=${e.seq} class=${`ev ev-${e.type}`} data-type=${e.type} data-revision=${e.revision ?? ""}>
          <span class="ev-rev mono">${e.revision === undefined ? "" : `#${e.revision}`}</span>
          <time class="ev-time muted" datetime=${e.at.toISOString()}>${clock(e.at)}</time>
          <span class="ev-type">${LABELS[e.type] ?? e.type}</span>
          ${e.serviceType
            ? html`<a class="ev-what" href=${`#/service/${encodeURIComponent(e.serviceType)}`}>${e.serviceType} <span class="mono">${e.address}</span></a>`
            : null}
          ${e.detail ? html`<span class="ev-detail">${e.detail}</span>` : null}
        </li>`,
      )}
    </ol>
  </aside>`;
}
