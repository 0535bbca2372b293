// A table that renders only the rows in view (plus a few either side), so a
// type with 10,000 instances or a registry with 1,000 types scrolls as fast
// as one with ten. Rows have one fixed height; the body's spacer has the
// height of them all, so the scroll bar tells the truth.

import { html } from "./html.js";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

/** Rows rendered beyond each edge of the view: room for Tab to move before the next render. */
const OVERSCAN = 6;

/** Whether a CSS media query matches now, re-rendering when that changes. */
export function useMedia(query) {
  const [matches, setMatches] = useState(() => matchMedia(query).matches);
  useEffect(() => {
    const list = matchMedia(query);
    const update = () => setMatches(list.matches);
    list.addEventListener("change", update);
    update();
    return () => list.removeEventListener("change", update);
  }, [query]);
  return matches;
}

/**
 * A sortable, virtualized table (ARIA table roles; column headers are
 * buttons; sort state in `aria-sort`).
 *
 * @param {{label: string, className: string, columns: {key: string, label: string, sortable?: boolean}[],
 *          rows: any[], rowKey: (row) => string, rowHeight: number, sort?: {key: string, dir: 1 | -1},
 *          onSort?: (key: string) => void, rowClass?: (row) => string, cell: (row, key: string) => any,
 *          empty?: any, resetKey?: string}} props  (a new `resetKey` scrolls back to the top)
 */
export function VirtualTable({ label, className, columns, rows, rowKey, rowHeight, sort, onSort, rowClass, cell, empty, resetKey }) {
  const body = useRef(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  useLayoutEffect(() => {
    const el = body.current;
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight });
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    measure();
    return () => observer.disconnect();
  }, []);
  // A new filter or order starts at the top.
  useLayoutEffect(() => {
    const el = body.current;
    if (el.scrollTop === 0) return;
    el.scrollTop = 0;
    setView({ top: 0, height: el.clientHeight });
  }, [resetKey]);
  // A shorter list than the scroll position (filtered, or rows removed): back to where rows are.
  const maxTop = Math.max(0, rows.length * rowHeight - view.height);
  const top = Math.min(view.top, maxTop);
  const first = Math.max(0, Math.floor(top / rowHeight) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((top + view.height) / rowHeight) + OVERSCAN);
  const visible = rows.slice(first, last);
  return html`
    <div class=${`vtable ${className}`} role="table" aria-label=${label} aria-rowcount=${rows.length + 1}>
      <div class="row head" role="row" aria-rowindex="1">
        ${columns.map(
          (c) => html`<div class=${`cell col-${c.key}`} role="columnheader"
            aria-sort=${sort && sort.key === c.key ? (sort.dir === 1 ? "ascending" : "descending") : undefined}>
            ${c.sortable && onSort
              ? html`<button type="button" class="sort" onClick=${() => onSort(c.key)}>
                  ${c.label}<span aria-hidden="true">${sort && sort.key === c.key ? (sort.dir === 1 ? " ▲" : " ▼") : ""}</span></button>`
              : c.label}
          </div>`,
        )}
      </div>
      <div class="vbody" ref=${body} role="rowgroup" tabindex="0" aria-label=${`${label}: rows`}
        onScroll=${(e) => setView({ top: e.currentTarget.scrollTop, height: e.currentTarget.clientHeight })}>
        ${rows.length === 0 && empty ? html`<div class="empty">${empty}</div>` : null}
        <div class="spacer" style=${{ height: `${rows.length * rowHeight}px` }}>
          ${visible.map((row, i) => {
            const index = first + i;
            return html`<div key=${rowKey(row)} class=${`row ${rowClass ? rowClass(row) : ""}`} role="row"
              aria-rowindex=${index + 2} data-key=${rowKey(row)}
              style=${{ transform: `translateY(${index * rowHeight}px)`, height: `${rowHeight}px` }}>
              ${columns.map((c) => html`<div class=${`cell col-${c.key}`} role="cell" data-label=${c.label}>${cell(row, c.key)}</div>`)}
            </div>`;
          })}
        </div>
      </div>
    </div>`;
}

/**
 * Sort state for a table: `onSort(key)` sorts by that column, or reverses it.
 *
 * @example
 * const [sort, onSort] = useSort({ key: "address", dir: 1 });
 */
export function useSort(initial) {
  const [sort, setSort] = useState(initial);
  const onSort = (key) => setSort((s) => (s.key === key ? { key, dir: -s.dir } : { key, dir: 1 }));
  return [sort, onSort];
}

const collator = new Intl.Collator(undefined, { numeric: true });

/** Rows sorted by `sort` with `valueOf(row, key)` (numbers or strings), ties by `tie`. */
export function sortRows(rows, sort, valueOf, tie) {
  const keyed = rows.map((row) => ({ row, value: valueOf(row, sort.key), tie: tie(row) }));
  keyed.sort((a, b) => {
    const order = typeof a.value === "number" && typeof b.value === "number" ? a.value - b.value : collator.compare(String(a.value), String(b.value));
    return order !== 0 ? order * sort.dir : collator.compare(a.tie, b.tie);
  });
  return keyed.map((k) => k.row);
}
