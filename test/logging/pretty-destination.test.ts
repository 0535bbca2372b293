import { describe, expect, it } from "vitest";
import { createLogger, stdoutDestination } from "../../src/logging/logger.js";
import { PrettyDestination, prettyDestination } from "../../src/logging/pretty-destination.js";

const ANSI = /\x1b\[[0-9;]*m/g;

/** The server's logger, pretty, writing into memory (colours removed). */
async function prettyCaptured() {
  const lines: string[] = [];
  const logger = createLogger("info", await prettyDestination({ write: (line: string) => void lines.push(line.replace(ANSI, "")) }));
  return { logger, lines };
}

describe("PrettyDestination", () => {
  it("writes one human-readable line per line logged, at once, without the service name", async () => {
    const { logger, lines } = await prettyCaptured();
    logger.info({ port: 4000 }, "hello");
    expect(lines).toEqual([expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: hello \{"port":4000\}\n$/)]);
  });

  it("formats the registry's change lines", async () => {
    const { logger, lines } = await prettyCaptured();
    logger.info({ instanceId: "i-1", serviceType: "api", host: "10.0.0.7", port: 8080, revision: 3 }, "instance registered");
    expect(lines).toEqual([
      expect.stringMatching(/^\[[\d:.]+\] INFO: instance registered \{"instanceId":"i-1","serviceType":"api","host":"10.0.0.7","port":8080,"revision":3\}\n$/),
    ]);
  });

  it("keeps pino's redaction", async () => {
    const { logger, lines } = await prettyCaptured();
    logger.warn({ key: "k-secret-0001", token: "t-secret-0001", headers: { authorization: "Bearer a-secret" } }, "direct");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("WARN: direct");
    expect(lines[0]).toContain('"key":"[redacted]"');
    expect(lines[0]).not.toMatch(/secret/);
  });
});

describe("stdoutDestination (LOG_FORMAT)", () => {
  it.each([
    ["auto", false, "JSON", false],
    ["auto", true, "pretty", true],
    ["json", true, "JSON", false],
    ["pretty", false, "pretty", true],
  ] as const)("%s, stdout a terminal: %s, gives %s lines", async (format, terminal, _lines, pretty) => {
    expect((await stdoutDestination(format, terminal)) instanceof PrettyDestination).toBe(pretty);
  });
});
