import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { flagName, SETTINGS } from "../../src/config/settings.js";

describe("README configuration table", () => {
  it("lists every setting with its flag and default, and nothing else", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const table = readme.split("<!-- settings-table:start -->")[1]?.split("<!-- settings-table:end -->")[0] ?? "";
    const rows = table.split("\n").filter((l) => l.startsWith("| `"));
    const expected = Object.values(SETTINGS).map(
      (s) => `| \`${s.env}\` | \`${flagName(s.env)}\` | \`${JSON.stringify(s.default)}\` | ${s.description} |`,
    );
    expect(rows).toEqual(expected);
  });
});
