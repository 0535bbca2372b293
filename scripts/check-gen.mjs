#!/usr/bin/env node
/**
 * Checks the contract and the generated code, without touching the tree:
 *   1. `buf lint`
 *   2. `buf format -d --exit-code` (proto files formatted)
 *   3. `buf generate -o <temp dir>`, then the descriptor sets `buf build`
 *      writes into gen/ (DESCRIPTOR_SETS), and a byte-for-byte comparison of
 *      the lot with gen/
 *   4. `buf breaking` against the previous commit, so a shipped field never
 *      changes meaning (skipped, saying so, where there is no previous commit)
 * Exits 1 naming what is wrong (and how to fix it), 0 when all is in order.
 * Run from anywhere: `npm run check:gen`.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const buf = join(root, "node_modules", ".bin", "buf");
const GEN = "gen";
/**
 * The FileDescriptorSets server reflection serves (src/server/proto-files.ts),
 * built by `buf build` beside what `buf generate` writes (buf.gen.yaml does not clean gen/). The
 * package.json "generate" script runs the same commands:
 *   buf generate
 *   && buf build --as-file-descriptor-set -o gen/registry.binpb
 *   && buf build node_modules/grpc-health-check/proto --as-file-descriptor-set -o gen/health.binpb
 *   && buf build node_modules/@grpc/reflection/build/proto --path node_modules/@grpc/reflection/build/proto/grpc/reflection --as-file-descriptor-set -o gen/reflection.binpb
 * If the two drift apart, this check reports the difference.
 * `--as-file-descriptor-set` leaves out buf's own metadata (field 8042).
 */
const REFLECTION_PROTO = "node_modules/@grpc/reflection/build/proto";
const DESCRIPTOR_SETS = [
  { args: ["."], out: "registry.binpb" },
  { args: ["node_modules/grpc-health-check/proto"], out: "health.binpb" },
  { args: [REFLECTION_PROTO, "--path", `${REFLECTION_PROTO}/grpc/reflection`], out: "reflection.binpb" },
];

/** Runs buf from the repository root; returns the result with output captured. */
function runBuf(args) {
  const result = spawnSync(buf, args, { cwd: root, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) fail(`cannot run ${relative(root, buf)}: ${result.error.message} (run npm ci first)`);
  return result;
}

/** A failed check; reported once, at the top level, after temp files are removed. */
class CheckFailed extends Error {}

function fail(message) {
  throw new CheckFailed(message);
}

/** Relative paths of every file under dir, sorted. */
function listFiles(dir, base = dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(path, base));
    else out.push(relative(base, path));
  }
  return out.sort();
}

function main() {
  const lint = runBuf(["lint"]);
  if (lint.status !== 0) fail(`buf lint found problems:\n${lint.stdout}${lint.stderr}`);
  console.log("check:gen: buf lint ok");

  const format = runBuf(["format", "-d", "--exit-code"]);
  if (format.status !== 0) {
    fail(`proto files are not formatted (fix with \`npx buf format -w\`):\n${format.stdout}${format.stderr}`);
  }
  console.log("check:gen: buf format ok");

  const previous = spawnSync("git", ["rev-parse", "--verify", "--quiet", "HEAD~1"], { cwd: root, encoding: "utf8" });
  if (previous.status === 0) {
    const breaking = runBuf(["breaking", "--against", ".git#ref=HEAD~1"]);
    if (breaking.status !== 0) {
      fail(`buf breaking: the contract changed incompatibly since the previous commit:\n${breaking.stdout}${breaking.stderr}`);
    }
    console.log("check:gen: buf breaking against HEAD~1 ok");
  } else {
    console.log("check:gen: buf breaking skipped: no previous commit to compare with");
  }

  const temp = mkdtempSync(join(tmpdir(), "check-gen-"));
  try {
    const generate = runBuf(["generate", "-o", temp]);
    if (generate.status !== 0) fail(`buf generate failed:\n${generate.stdout}${generate.stderr}`);
    const fresh = join(temp, GEN);
    for (const { args, out } of DESCRIPTOR_SETS) {
      const build = runBuf(["build", ...args, "--as-file-descriptor-set", "-o", join(fresh, out)]);
      if (build.status !== 0) fail(`buf build ${args.join(" ")} failed:\n${build.stdout}${build.stderr}`);
    }
    const committed = join(root, GEN);
    const freshFiles = listFiles(fresh);
    const committedFiles = listFiles(committed);
    if (freshFiles.length === 0) fail(`buf generate produced nothing under ${GEN}/ (check buf.gen.yaml)`);
    const problems = [];
    for (const file of freshFiles) {
      if (!committedFiles.includes(file)) problems.push(`missing:  ${GEN}/${file}`);
      else if (!readFileSync(join(fresh, file)).equals(readFileSync(join(committed, file)))) {
        problems.push(`outdated: ${GEN}/${file}`);
      }
    }
    for (const file of committedFiles) {
      if (!freshFiles.includes(file)) problems.push(`extra:    ${GEN}/${file} (no longer generated)`);
    }
    if (problems.length > 0) {
      fail(`${GEN}/ is stale; run \`npm run generate\` and commit the result:\n  ${problems.join("\n  ")}`);
    }
    console.log(`check:gen: ${GEN}/ is up to date (${freshFiles.length} files)`);

    // Plain `buf generate` on a copy of the committed gen/ must leave it as it
    // is: nothing it writes may differ, and nothing (the descriptor sets) be removed.
    const plain = join(temp, "plain");
    cpSync(committed, join(plain, GEN), { recursive: true });
    const again = runBuf(["generate", "-o", plain]);
    if (again.status !== 0) fail(`buf generate failed:\n${again.stdout}${again.stderr}`);
    const after = listFiles(join(plain, GEN));
    const changed = [
      ...committedFiles.filter((f) => !after.includes(f)).map((f) => `removed:  ${GEN}/${f}`),
      ...after.filter((f) => !committedFiles.includes(f) || !readFileSync(join(plain, GEN, f)).equals(readFileSync(join(committed, f)))).map((f) => `changed:  ${GEN}/${f}`),
    ];
    if (changed.length > 0) fail(`\`buf generate\` changes the committed ${GEN}/:\n  ${changed.join("\n  ")}`);
    console.log(`check:gen: \`buf generate\` leaves ${GEN}/ as committed`);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  if (!(err instanceof CheckFailed)) throw err;
  process.stderr.write(`check:gen: FAILED: ${err.message}\n`);
  process.exitCode = 1;
}
