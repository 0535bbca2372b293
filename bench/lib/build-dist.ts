import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
let building: Promise<string> | undefined;

/**
 * Builds `dist/` as `npm run build` does (the deployed form, for scenario 5's
 * start-up) and resolves with its folder. Once per run: a second call gets
 * the first build, so the quick run can start it early.
 */
export function buildDist(): Promise<string> {
  building ??= (async () => {
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    try {
      await promisify(execFile)(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.build.json")]);
    } catch (err) {
      // tsc reports compile errors on stdout.
      throw new Error(`npm run build failed: ${(err as { stdout?: string }).stdout ?? ""}${(err as Error).message}`);
    }
    return join(ROOT, "dist");
  })();
  return building;
}
