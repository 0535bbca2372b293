// Small pure helpers: how the console spells durations, addresses and selectors.

/** `host:port`, with an IPv6 host in brackets. */
export function address(instance) {
  return instance.host.includes(":") ? `[${instance.host}]:${instance.port}` : `${instance.host}:${instance.port}`;
}

/** A duration as people read it at a glance: `42s`, `7m 03s`, `5h 12m`, `3d 4h`. */
export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Milliseconds of a probe: `0.4 ms`, `12 ms`, `1.2 s`. */
export function millis(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "–";
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** `HH:MM:SS` of a time, local. */
const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

export function clock(date) {
  // One formatter for every row: toLocaleTimeString builds a new one per call, per row, per frame.
  return CLOCK.format(date);
}

/**
 * Parses a selector as the server takes it (`zone=eu-1,tier=web`, equality
 * only): `{ selector }` or `{ error }`. Empty text is no selector.
 */
export function parseSelector(text) {
  const trimmed = text.trim();
  if (trimmed === "") return { selector: {} };
  const selector = {};
  for (const term of trimmed.split(",")) {
    const eq = term.indexOf("=");
    if (eq <= 0) return { error: `"${term}" is not key=value` };
    const key = term.slice(0, eq).trim();
    if (Object.hasOwn(selector, key)) return { error: `key "${key}" is given twice` };
    // `k==v` is Kubernetes' equality too: the server reads it as `k=v`, and so does the page.
    selector[key] = term.slice(eq + 1).replace(/^=/, "").trim();
  }
  return { selector };
}

/** A selector as the `?selector=` text (`k=v,k2=v2`). */
export function selectorText(selector) {
  return Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(",");
}

/** Whether an instance's metadata matches every term of a selector. */
export function matches(metadata, selector) {
  for (const [k, v] of Object.entries(selector)) if (!Object.hasOwn(metadata, k) || metadata[k] !== v) return false;
  return true;
}

/** Metadata as one line: `zone=eu-1 tier=web`. */
export function metadataText(metadata) {
  return Object.entries(metadata).map(([k, v]) => `${k}=${v}`).join(" ");
}
