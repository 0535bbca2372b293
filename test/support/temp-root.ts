import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Vitest global setup: every temporary file of the run (data directories,
 * etcd members, certificates, `.env` files; the test files' own and those of
 * the servers they spawn) goes under one folder, removed when the run ends.
 * Tests make hundreds of them per run and remove few; without this each
 * run left them in the system's temp folder. `os.tmpdir()` reads TMPDIR, and
 * the test workers and their child processes inherit it.
 * KEEP_TEST_TMP=1 keeps the folder (its path is printed) to look at after a failure.
 */
export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), "service-registry-tests-"));
  process.env.TMPDIR = root;
  return () => {
    if (process.env.KEEP_TEST_TMP === "1") {
      process.stderr.write(`test temp files kept in ${root}\n`);
      return;
    }
    rmSync(root, { recursive: true, force: true });
  };
}
