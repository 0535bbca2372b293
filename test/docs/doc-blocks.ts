import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Reads the project's Markdown the way a reader meets it: fenced code blocks
 * with their language and the section they sit in, the command lines of the
 * shell blocks (continuations joined, comments apart), and inline code spans.
 * The doc-sample tests take every sample from here, so what they run is what
 * the docs say.
 */

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** README.md and every Markdown file in docs/, as paths relative to the root. */
export function docPaths(): string[] {
  const docs = readdirSync(`${ROOT}docs`).filter((f) => f.endsWith(".md")).sort();
  return ["README.md", ...docs.map((f) => `docs/${f}`)];
}

/** One fenced code block. */
export interface DocBlock {
  readonly doc: string;
  /** `README.md#Quick start`: the document and the nearest heading above the block. */
  readonly where: string;
  /** 1-based line of the block's first code line. */
  readonly line: number;
  /** The fence's info string: `sh`, `ts`, `yaml`, or "" */
  readonly lang: string;
  readonly text: string;
}

/** Every fenced block of `doc`, in document order. */
export function docBlocks(doc: string, markdown = readFileSync(`${ROOT}${doc}`, "utf8")): DocBlock[] {
  const blocks: DocBlock[] = [];
  const lines = markdown.split("\n");
  let heading = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const fence = /^```(\S*)\s*$/.exec(line);
    if (!fence) {
      const h = /^#{1,6}\s+(.*)$/.exec(line);
      if (h) heading = (h[1] as string).trim();
      continue;
    }
    const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
    if (end === -1) throw new Error(`${doc}:${i + 1}: unterminated code fence`);
    blocks.push({ doc, where: `${doc}#${heading}`, line: i + 2, lang: fence[1] ?? "", text: lines.slice(i + 1, end).join("\n") });
    i = end;
  }
  return blocks;
}

/** One command line of a shell block. */
export interface ShellCommand {
  readonly block: DocBlock;
  /** 1-based line in the document where the command starts. */
  readonly line: number;
  /** The command, continuations joined and the trailing comment removed, trimmed. */
  readonly command: string;
  /** The trailing `# ...` comment, without the `#`, if any. */
  readonly comment: string | undefined;
}

/** Where an unquoted `#` starting a word begins a comment in a shell line, or -1. */
function commentStart(line: string): number {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "\\") i++;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1] as string))) return i;
  }
  return -1;
}

/** The command lines of a shell block, in order; blank and comment-only lines are skipped. */
export function shellCommands(block: DocBlock): ShellCommand[] {
  const out: ShellCommand[] = [];
  const lines = block.text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let joined = lines[i] as string;
    while (/\\$/.test(joined) && i + 1 < lines.length) joined = `${joined.slice(0, -1).trimEnd()} ${(lines[++i] as string).trim()}`;
    const hash = commentStart(joined);
    const command = (hash === -1 ? joined : joined.slice(0, hash)).trim();
    if (command === "") continue;
    out.push({ block, line: block.line + start, command, comment: hash === -1 ? undefined : joined.slice(hash + 1).trim() });
  }
  return out;
}

/** Inline code spans outside fenced blocks, with their 1-based line. */
export function inlineCode(markdown: string): { text: string; line: number }[] {
  const spans: { text: string; line: number }[] = [];
  let inFence = false;
  markdown.split("\n").forEach((line, i) => {
    if (line.startsWith("```")) inFence = !inFence;
    else if (!inFence) for (const m of line.matchAll(/`([^`\n]+)`/g)) spans.push({ text: m[1] as string, line: i + 1 });
  });
  return spans;
}

/** Relative link targets (`[text](target)`) outside fenced blocks, with their 1-based line. */
export function relativeLinks(markdown: string): { target: string; line: number }[] {
  const links: { target: string; line: number }[] = [];
  let inFence = false;
  markdown.split("\n").forEach((line, i) => {
    if (line.startsWith("```")) inFence = !inFence;
    else if (!inFence) {
      for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] as string;
        if (!/^[a-z]+:/i.test(target)) links.push({ target, line: i + 1 });
      }
    }
  });
  return links;
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes. */
export function headingAnchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[`*_]/g, "")
    .replace(/[^\p{L}\p{N} -]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of every heading of a Markdown document. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let inFence = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) inFence = !inFence;
    const h = !inFence && /^#{1,6}\s+(.*)$/.exec(line);
    if (h) anchors.add(headingAnchor((h[1] as string).trim()));
  }
  return anchors;
}
