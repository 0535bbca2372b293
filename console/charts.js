// Charts of the last hour from GET /console/series (kept in the registry's
// memory, sampled at its intervalMs): healthy instances per type, and the
// prober's schedule lag p99. Drawn with uPlot (canvas, fast with thousands of
// points), refreshed every 10 s.

import uPlot from "uplot";
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

const REFRESH_MS = 10_000;
const MIN_SPAN_S = 300;
const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];

/**
 * GET /console/series now and every 10 s: `{samples, error}`. With `type`,
 * that type's line only; without, the server's largest few types.
 */
export function useSeries(api, type) {
  const [state, setState] = useState({ samples: [], error: undefined });
  useEffect(() => {
    let stopped = false;
    const controller = new AbortController();
    const load = async () => {
      try {
        const query = type ? `?${new URLSearchParams({ types: type })}` : "";
        const { samples } = await api.get(`/console/series${query}`, { signal: controller.signal });
        if (!stopped) setState({ samples, error: undefined });
      } catch (err) {
        if (!stopped && err.name !== "AbortError") setState((s) => ({ ...s, error: err.message }));
      }
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
      controller.abort();
    };
  }, [api, type]);
  return state;
}

/** Healthy instances over time of `types` (each a line), from samples. */
export function healthyLines(samples, types) {
  return types.map((type) => ({ label: type, values: samples.map((s) => (s.healthy && type in s.healthy ? s.healthy[type] : null)) }));
}

/** The sample times in seconds, as uPlot wants its x values. */
export function sampleTimes(samples) {
  return samples.map((s) => Date.parse(s.at) / 1000);
}

/**
 * One uPlot line chart that follows its container's width.
 *
 * @param {{title: string, times: number[], lines: {label: string, values: (number|null)[]}[], unit?: string}} props
 */
export function TimeChart({ title, times, lines, unit = "" }) {
  const box = useRef(null);
  const plot = useRef(undefined);
  const shown = useRef(times);
  shown.current = times;
  const labels = lines.map((l) => l.label).join("\u0000");
  useEffect(() => {
    const el = box.current;
    const width = () => Math.max(200, el.clientWidth);
    plot.current = new uPlot(
      {
        width: width(),
        height: 150,
        series: [{}, ...lines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false }))],
        axes: [{}, { values: (_, ticks) => ticks.map((t) => `${t}${unit}`), size: 56 }],
        scales: {
          // At least the last 5 minutes across, so a few samples do not stretch over years.
          x: { time: true, range: () => xRange(shown.current) },
          y: { range: (_, min, max) => [0, Math.max(1, max ?? 1)] },
        },
        legend: { show: lines.length > 0 },
        cursor: { drag: { x: false, y: false } },
      },
      [times, ...lines.map((l) => l.values)],
      el,
    );
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: width(), height: 150 }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, [labels, unit]);
  useEffect(() => {
    plot.current?.setData([times, ...lines.map((l) => l.values)]);
  }, [times, lines]);
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div class="chart-box" ref=${box} role="img" aria-label=${`${title}: ${lines.length === 0 ? "no data yet" : describe(lines, unit)}`}></div>
  </figure>`;
}

/** The x axis: the samples' times, at least MIN_SPAN_S across, ending at the latest. */
function xRange(times) {
  const end = times.length > 0 ? times[times.length - 1] : Date.now() / 1000;
  const start = times.length > 0 ? times[0] : end;
  return [Math.min(start, end - MIN_SPAN_S), end];
}

/** The chart in words (for screen readers): each line's latest value. */
function describe(lines, unit) {
  return lines
    .map((l) => {
      const latest = [...l.values].reverse().find((v) => v !== null && v !== undefined);
      return `${l.label} ${latest === undefined ? "no data" : `${Math.round(latest * 10) / 10}${unit}`}`;
    })
    .join(", ");
}
