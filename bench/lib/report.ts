/** A measured value of something we compare against: a ceiling or a peer. */
export interface Reference {
  readonly name: string;
  readonly value: number;
}

/** How a figure is judged: a ratio bound against its ceiling or peer, or an absolute bound. */
export interface Target {
  readonly against: "ceiling" | "peer" | "absolute";
  readonly op: "<=" | ">=";
  /** The ratio (for ceiling or peer) or the absolute value the figure must stay within. */
  readonly bound: number;
}

/** One row of the results: our figure beside its ceiling and its peer, from the same run. */
export interface Figure {
  readonly scenario: string;
  readonly case: string;
  readonly metric: string;
  readonly unit: string;
  readonly ours: number;
  readonly ceiling?: Reference;
  readonly peer?: Reference;
  /** Every target must hold for the figure to be met. */
  readonly targets?: readonly Target[];
  /** Extra numbers kept in the JSON (latency percentiles, counts). */
  readonly detail?: Record<string, unknown>;
}

/** A figure with its ratios and verdict worked out. */
export interface JudgedFigure extends Figure {
  readonly ceilingRatio?: number;
  readonly peerRatio?: number;
  readonly met?: boolean;
}

export function judge(figure: Figure): JudgedFigure {
  // A figure that was not measured (NaN) or never came (Infinity, a failure not seen) has no ratio, and misses any target.
  const ratio = (ref?: Reference): number | undefined =>
    ref && ref.value !== 0 && Number.isFinite(ref.value) && Number.isFinite(figure.ours) ? figure.ours / ref.value : undefined;
  const ceilingRatio = ratio(figure.ceiling);
  const peerRatio = ratio(figure.peer);
  let met: boolean | undefined;
  for (const t of figure.targets ?? []) {
    const value = t.against === "ceiling" ? ceilingRatio : t.against === "peer" ? peerRatio : figure.ours;
    const ok = value !== undefined && (t.op === "<=" ? value <= t.bound : value >= t.bound);
    met = (met ?? true) && ok;
  }
  return { ...figure, ceilingRatio, peerRatio, met };
}

export function targetText(targets: readonly Target[] | undefined): string {
  return (targets ?? [])
    .map((t) => {
      const op = t.op === "<=" ? "≤" : "≥";
      return t.against === "absolute" ? `${op} ${fmt(t.bound)}` : `${op} ${t.bound}× ${t.against}`;
    })
    .join(", ");
}

/** A number with about three significant digits, thousands grouped. */
export function fmt(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString("en-US");
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function ratioText(r: number | undefined): string {
  return r === undefined ? "—" : `${r.toFixed(2)}×`;
}

/** The results as a Markdown table (also readable on a terminal). */
export function renderTable(figures: readonly JudgedFigure[]): string {
  const header = ["scenario", "case", "figure", "ours", "ceiling", "÷ceiling", "peer", "÷peer", "target", "met"];
  const rows = figures.map((f) => [
    f.scenario,
    f.case,
    `${f.metric} (${f.unit})`,
    fmt(f.ours),
    f.ceiling ? `${fmt(f.ceiling.value)} ${f.ceiling.name}` : "—",
    ratioText(f.ceilingRatio),
    f.peer ? `${fmt(f.peer.value)} ${f.peer.name}` : "—",
    ratioText(f.peerRatio),
    targetText(f.targets),
    f.met === undefined ? "" : f.met ? "yes" : "**NO**",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
