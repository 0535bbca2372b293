import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import { ROOT, type DocBlock } from "./doc-blocks.js";

/**
 * Type-checks and runs the TypeScript samples of the docs as a reader would
 * paste them into a project that installed the package: `service-registry`
 * and `service-registry/client` resolve to the package's sources (as the
 * built package's types do to dist/), everything else as in this project.
 */

/** The package's entry points, as its `exports` map them, in the sources. */
const ENTRIES: Record<string, string> = {
  "service-registry": `${ROOT}src/lib.ts`,
  "service-registry/client": `${ROOT}src/client/index.ts`,
};

/**
 * One sample to check. `declares` names what the sample deliberately leaves
 * to the reader (their own stubs, their logger): ambient declarations
 * appended after the sample, so a diagnostic's line is the document's line.
 */
export interface TsSample {
  readonly block: DocBlock;
  readonly declares?: string;
}

/**
 * The compiler's complaints about each sample, as `doc:line: message`.
 * Each sample is its own ES module (a virtual `.mts` file under test/docs/,
 * so packages resolve from this project's node_modules; nothing is
 * written), compiled with the project's strict options.
 */
export function typeCheck(samples: readonly TsSample[]): string[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ["lib.es2023.d.ts"],
    types: ["node"],
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    noEmit: true,
    paths: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, [v]])),
  };
  const virtual = new Map<string, { sample: TsSample; text: string }>();
  samples.forEach((sample, i) => {
    const file = `${ROOT}test/docs/__doc-sample-${i}.mts`;
    virtual.set(file, { sample, text: `${sample.block.text}\n${sample.declares ?? ""}\nexport {};\n` });
  });
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (f) => virtual.has(f) || fileExists.call(host, f);
  host.readFile = (f) => virtual.get(f)?.text ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, ...rest) => {
    const v = virtual.get(f);
    return v ? ts.createSourceFile(f, v.text, lang, true) : getSourceFile.call(host, f, lang, ...rest);
  };
  const program = ts.createProgram([...virtual.keys()], options, host);
  const problems: string[] = [];
  for (const [file, { sample }] of virtual) {
    const source = program.getSourceFile(file) as ts.SourceFile;
    for (const d of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
      const line = source.getLineAndCharacterOfPosition(d.start ?? 0).line;
      problems.push(`${sample.block.doc}:${sample.block.line + line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
    }
  }
  return problems;
}

/**
 * Runs a sample in this process and returns its module namespace. `before`
 * defines what the sample leaves to the reader, `after` exports what the
 * test wants to look at (e.g. `export { registry };`); `replace` swaps
 * literal text (addresses) for this machine's. The package's entries
 * resolve to the sources, as in `typeCheck`.
 */
export async function runSample(
  block: DocBlock,
  opts: { before?: string; after?: string; replace?: readonly [string, string][] } = {},
): Promise<Record<string, unknown>> {
  let text = block.text;
  for (const [from, to] of opts.replace ?? []) {
    if (!text.includes(from)) throw new Error(`${block.doc}:${block.line}: the sample no longer contains ${JSON.stringify(from)}`);
    text = text.split(from).join(to);
  }
  text = text.replace(/from "(service-registry(?:\/client)?)"/g, (_, name: string) => `from ${JSON.stringify(pathToFileURL(ENTRIES[name] as string).href)}`);
  const dir = mkdtempSync(join(tmpdir(), "doc-sample-"));
  const file = join(dir, "sample.ts");
  writeFileSync(file, `${opts.before ?? ""}\n${text}\n${opts.after ?? ""}\n`);
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
