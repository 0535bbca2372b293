import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/temp-root.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // The library logs to console by default (as the seed says): show it for failing tests only.
    silent: "passed-only",
  },
});
