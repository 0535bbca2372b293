/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench --
 * --profile`): CPU time by package or source area, then the functions with
 * the most self time and the most inclusive time. Idle time is left out, so
 * shares are of the CPU the process actually used.
 *
 * usage: node --import tsx bench/investigations/profile-summary.ts FILE.cpuprofile [--top=25] [--match=TEXT]
 *   --match=TEXT  only samples whose stack contains a function or file matching TEXT
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith("--"));
if (!file) {
  process.stderr.write("usage: profile-summary FILE.cpuprofile [--top=25] [--match=TEXT]\n");
  process.exit(2);
}
const top = Number(args.find((a) => a.startsWith("--top="))?.slice(6) ?? 25);
const match = args.find((a) => a.startsWith("--match="))?.slice(8);

// Piped into `head`: stop quietly when the reader goes away.
process.stdout.on("error", (err: NodeJS.ErrnoException) => process.exit(err.code === "EPIPE" ? 0 : 1));

const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function area(url: string, name: string): string {
  if (name === "(garbage collector)") return "GC";
  if (name === "(program)" || name === "(root)") return "(program: native, not JS)";
  if (!url) return `native/builtin`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1] as string;
  if (url.startsWith("node:")) return "node internals";
  const own = /\/(src|gen|bench)\/([^/]+)/.exec(url);
  if (own) return `${own[1]}/${own[2]}`;
  return url;
}
const key = (n: ProfileNode): string => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.replace(/^.*\/(node_modules|src|gen|bench)\//, "$1/")}:${f.lineNumber + 1}` : "";
  return `${f.functionName || "(anonymous)"} ${where}`.trim();
};

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
const areas = new Map<string, number>();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i] as number) as ProfileNode;
  const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
  if (node.callFrame.functionName === "(idle)") continue;
  const stack: ProfileNode[] = [];
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) stack.push(byId.get(id) as ProfileNode);
  if (match && !stack.some((n) => key(n).includes(match))) continue;
  total += dt;
  self.set(key(node), (self.get(key(node)) ?? 0) + dt);
  const a = area(node.callFrame.url, node.callFrame.functionName);
  areas.set(a, (areas.get(a) ?? 0) + dt);
  for (const k of new Set(stack.map(key))) inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
}

const pct = (v: number): string => `${((100 * v) / total).toFixed(1).padStart(5)}%`;
const ms = (v: number): string => `${(v / 1000).toFixed(0).padStart(7)} ms`;
const list = (title: string, m: Map<string, number>, n: number): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`${ms(v)} ${pct(v)}  ${k}\n`);
};
process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms of CPU samples${match ? ` with "${match}" on the stack` : ""}\n`);
list("by area (self time)", areas, 20);
list("self time", self, top);
list("inclusive time", inclusive, top);
