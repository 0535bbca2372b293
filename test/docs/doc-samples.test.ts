import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CLIENT_COMMANDS } from "../../src/cli/commands/client-commands.js";
import { SETTINGS } from "../../src/config/settings.js";
import { startStack } from "../support/stack.js";
import { healthStatus } from "../support/health-client.js";
import { TEST_KEY } from "../support/registry-harness.js";
import { docBlocks, docPaths, headingAnchors, inlineCode, relativeLinks, ROOT, shellCommands, type DocBlock, type ShellCommand } from "./doc-blocks.js";
import { jsonLine, killGroup, projectCopy, runShell, startShell, type Running } from "./doc-shell.js";
import { otherBlockEntry, ruleFor, SHELL_RULES, type Runner } from "./sample-plan.js";
import { runSample, typeCheck } from "./ts-samples.js";

/**
 * Every command and code sample of README.md and docs/*.md, tried (issue
 * #21): shell commands run for real with bash (curl, the CLI through npm,
 * `npm start`, the router example's processes) against real servers on
 * ephemeral ports; TypeScript samples are type-checked against the package
 * and, where they can, run. What cannot run here is listed with the reason
 * in sample-plan.ts, so a sample added later fails until someone decides.
 */

const DOCS = docPaths();
const BLOCKS = DOCS.flatMap((doc) => docBlocks(doc));
const SHELL = BLOCKS.filter((b) => ["sh", "bash", "shell"].includes(b.lang)).flatMap(shellCommands);
const TS = BLOCKS.filter((b) => b.lang === "ts" || b.lang === "typescript");

/** The commands a runner group runs, in document order. */
function commandsOf(runner: Runner, where?: string): ShellCommand[] {
  return SHELL.filter((c) => {
    const rule = ruleFor(c);
    return typeof rule !== "string" && "run" in rule.how && rule.how.run === runner && (where === undefined || c.block.where === where);
  });
}

/** The one TypeScript sample under a heading. */
function tsSample(where: string, index = 0): DocBlock {
  const block = TS.filter((b) => b.where === where)[index];
  if (!block) throw new Error(`no TypeScript sample in ${where}`);
  return block;
}

/**
 * What TypeScript samples leave to the reader on purpose (their generated
 * stubs, their logger, variables from the sample before): ambient
 * declarations, by `doc#heading`.
 */
const TS_DECLARES: Record<string, string> = {
  "README.md#Client SDK":
    'declare const key: string;\ndeclare const BillingClient: typeof import("@grpc/grpc-js").Client;\ndeclare const server: import("@grpc/grpc-js").Server;',
  "docs/client.md#watch()": [
    'declare const client: import("service-registry/client").RegistryClient;',
    'declare function replaceAll(instances: readonly import("service-registry").Instance[]): void;',
    'declare function upsert(instance: import("service-registry").Instance): void;',
    "declare function remove(id: string): void;",
  ].join("\n"),
  "docs/client.md#registerSelf()": "declare const log: { info(fields: object, msg: string): void; warn(fields: object, msg: string): void };",
  "docs/client.md#One port for gRPC and /health": [
    'declare const GreeterService: import("@grpc/grpc-js").ServiceDefinition;',
    'declare const impl: import("@grpc/grpc-js").UntypedServiceImplementation;',
    "declare let ready: boolean;",
  ].join("\n"),
  "docs/client.md#The registry:/// resolver": 'declare const key: string;\ndeclare const BillingClient: typeof import("@grpc/grpc-js").Client;',
};

/** A loopback port nothing listens on (for a registry replica that is down). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The value a documented assignment (`KEY=...`, `export X=$(...)`) gives, run by bash in `cwd`. */
async function assigned(c: ShellCommand, cwd = ROOT, env: Record<string, string> = {}): Promise<{ name: string; value: string }> {
  const name = /^(?:export\s+)?([A-Za-z_]\w*)=/.exec(c.command)?.[1];
  if (!name) throw new Error(`${c.block.doc}:${c.line}: not an assignment: ${c.command}`);
  const r = await runShell(`${c.command}\nprintf %s "$${name}"`, { cwd, env });
  expect(r.stderr, `${c.block.doc}:${c.line}: \`${c.command}\``).toBe("");
  expect(r.stdout, `${c.block.doc}:${c.line}: \`${c.command}\` gave nothing`).not.toBe("");
  return { name, value: r.stdout };
}

/** Whether a command is on this machine's PATH. */
async function onPath(command: string): Promise<boolean> {
  return (await runShell(`command -v ${command}`)).code === 0;
}

/** The serving line (`{"port": N, "store": ...}`) of a started server, as its port. */
const servingPort = (line: string): number | undefined => {
  const fields = jsonLine(line);
  return typeof fields?.port === "number" && fields.store !== undefined ? fields.port : undefined;
};

describe("the samples in README.md and docs/*.md", () => {
  it("finds the docs and their samples", () => {
    expect(DOCS).toEqual(["README.md", "docs/architecture.md", "docs/client.md", "docs/operations.md", "docs/performance.md", "docs/replicas.md", "docs/xds.md"]);
    expect(SHELL.length).toBeGreaterThan(50);
    expect(TS.length).toBeGreaterThanOrEqual(7);
  });

  it("every shell command is run here, run by another test, or listed with the reason it is not", () => {
    const problems = SHELL.map(ruleFor).filter((r): r is string => typeof r === "string");
    expect(problems, "add a rule to test/docs/sample-plan.ts").toEqual([]);
    const used = new Set(SHELL.map(ruleFor));
    const stale = SHELL_RULES.filter((r) => !used.has(r)).map((r) => `${r.where}: ${String(r.command)}`);
    expect(stale, "rules in sample-plan.ts that match no command any more").toEqual([]);
    for (const rule of SHELL_RULES) if ("coveredBy" in rule.how) expect(existsSync(`${ROOT}${rule.how.coveredBy}`), rule.how.coveredBy).toBe(true);
  });

  it("every other block is a TypeScript sample or listed with what is checked of it", () => {
    const other = BLOCKS.filter((b) => !["sh", "bash", "shell", "ts", "typescript"].includes(b.lang));
    expect(other.filter((b) => !otherBlockEntry(b)).map((b) => `${b.doc}:${b.line} (${b.where}) \`\`\`${b.lang}`)).toEqual([]);
  });

  it("every TypeScript sample type-checks against the package (service-registry, service-registry/client)", () => {
    const problems = typeCheck(TS.map((block) => ({ block, declares: TS_DECLARES[block.where] })));
    expect(problems).toEqual([]);
  }, 30_000);
});

describe("quick start: npm start, the generated key, keygen", () => {
  let running: Running | undefined;
  let cwd: string | undefined;
  afterEach(() => killGroup(running));
  afterAll(() => {
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it("a first `npm start` generates ./data/registration-key (0600), which `cat` reads and the server takes; a keygen key replaces it", { timeout: 60_000 }, async () => {
    cwd = projectCopy();
    const env = { PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1", SERVICE_REGISTRATION_KEY: "" };
    const commands = commandsOf("quick start");
    const first = commands.find((c) => c.command === "npm install && npm start") as ShellCommand;
    running = startShell(first.command.replace(/^npm install && /, ""), { cwd, env });
    const port = await running.waitFor("serving line", servingPort);
    const keyFile = join(cwd, "data/registration-key");
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(running.stdout(), "the log names the key file").toContain("registration-key");

    const register = (key: string) =>
      fetch(`http://127.0.0.1:${port}/service`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ serviceType: "quick-start", port: 3000, host: "10.0.0.1" }),
      });
    const catKey = commands.find((c) => c.command === "KEY=$(cat data/registration-key)") as ShellCommand;
    const generated = (await assigned(catKey, cwd)).value;
    expect((await register(generated)).status).toBe(201);
    // Ctrl-C: SIGINT to the terminal's whole foreground group (bash, npm, node); a graceful stop.
    await running.stop("SIGINT");
    expect(running.stdout()).toContain('"msg":"stopped"');

    // `export SERVICE_REGISTRATION_KEY=$(npm run -s cli -- keygen)` then `npm start`, as one shell
    // session; bash -x shows the key the export got.
    const block = commands.filter((c) => c.block.where === "README.md#Quick start" && c.command !== first.command && !c.command.includes("npm test"));
    expect(block.map((c) => c.command)).toEqual(["export SERVICE_REGISTRATION_KEY=$(npm run -s cli -- keygen)", "npm start"]);
    running = startShell(block.map((c) => c.command).join("\n"), { cwd, env: { ...env, SERVICE_REGISTRATION_KEY: "" }, trace: true });
    const port2 = await running.waitFor("serving line", servingPort);
    const chosen = /^\+ export SERVICE_REGISTRATION_KEY=(\S+)$/m.exec(running.stderr())?.[1];
    expect(chosen, running.stderr()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const register2 = (key: string) =>
      fetch(`http://127.0.0.1:${port2}/service`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ serviceType: "quick-start", port: 3000, host: "10.0.0.1" }),
      });
    expect((await register2(chosen as string)).status).toBe(201);
    expect((await register2(generated)).status, "the exported key replaces the generated one").toBe(401);
    await running.stop("SIGINT");
    expect(running.stdout()).toContain('"msg":"stopped"');
  });
});

/**
 * Runs documented curl lines with curl against `origins` (the documented
 * `localhost:PORT` → this test's server), in order; `ID` and `TOKEN` are set
 * from the Register answer, as the docs tell the reader to. Returns each
 * line's output (JSON parsed where it is JSON).
 */
async function runCurlLines(commands: readonly ShellCommand[], origins: Record<string, string>, vars: Record<string, string>): Promise<unknown[]> {
  const answers: unknown[] = [];
  for (const c of commands) {
    if (!c.command.startsWith("curl ")) {
      const { name, value } = await assigned(c);
      vars[name] = value;
      continue;
    }
    let line = c.command;
    for (const [documented, actual] of Object.entries(origins)) line = line.split(documented).join(actual);
    const r = await runShell(line, { env: vars });
    const where = `${c.block.doc}:${c.line}: \`${c.command}\``;
    expect(r.code, `${where}: ${r.stderr}`).toBe(0);
    let answer: unknown = r.stdout;
    if (r.stdout.startsWith("{")) {
      answer = JSON.parse(r.stdout) as unknown;
      expect(answer, where).not.toHaveProperty("error");
      const created = answer as { serviceId?: string; token?: string };
      if (created.serviceId && created.token) Object.assign(vars, { ID: created.serviceId, TOKEN: created.token });
    }
    answers.push(answer);
  }
  return answers;
}

describe("HTTP/JSON API: the curl commands, with curl", () => {
  const SEED_KEY = "some really long and complicated string";
  let server: Awaited<ReturnType<typeof startStack>>;
  let dir: string | undefined;
  let metricsText = "";
  beforeAll(async () => {
    expect(await onPath("curl"), "curl is not installed (Debian: apt-get install curl)").toBe(true);
    // The default store (sqlite), so the SQLite store's own metric is there too.
    dir = mkdtempSync(join(tmpdir(), "doc-http-"));
    server = await startStack({ SERVICE_REGISTRATION_KEY: `${SEED_KEY},${TEST_KEY}`, STORE: "sqlite", DATA_DIR: join(dir, "data") });
  });
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("README: the seed's key and body on :4000, every route, /healthz and /metrics", async () => {
    const commands = commandsOf("HTTP API", "README.md#HTTP/JSON API, metrics, health");
    const vars: Record<string, string> = {};
    const answers = await runCurlLines(commands, { "localhost:4000": server.address }, vars);
    const at = (needle: string) => answers[commands.filter((c) => c.command.startsWith("curl ")).findIndex((c) => c.command.includes(needle))];
    expect(vars.KEY).toBe(SEED_KEY);
    expect(at("-X POST")).toMatchObject({ serviceId: vars.ID, token: vars.TOKEN, instance: { serviceType: "product-service", port: 3000, health: "HEALTHY" } });
    expect(at("/services/product-service -H")).toMatchObject({ instances: [{ id: vars.ID }] });
    expect(at("includeUnhealthy=true")).toMatchObject({ instances: [{ id: vars.ID }] });
    expect(at("-X DELETE")).toMatchObject({ instance: { id: vars.ID } });
    expect(at("/healthz")).toEqual({ status: "SERVING" });
    metricsText = String(at("/metrics"));
    expect(metricsText).toMatch(/^# HELP /m);
  });

  it("README: Selectors' HTTP query answers only the instances whose metadata matches", async () => {
    const register = (port: number, metadata: Record<string, string>) =>
      fetch(`http://${server.address}/service`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TEST_KEY}` },
        body: JSON.stringify({ serviceType: "billing", port, host: "10.0.0.7", metadata }),
      }).then(async (res) => ((await res.json()) as { serviceId: string }).serviceId);
    const euWeb = await register(7101, { zone: "eu-1", tier: "web" });
    const others = [await register(7102, { zone: "eu-1", tier: "db" }), await register(7103, { zone: "us-1", tier: "web" })];
    try {
      const commands = commandsOf("HTTP API", "README.md#Selectors");
      expect(commands).toHaveLength(1);
      const answers = await runCurlLines(commands, { "localhost:4000": server.address }, { KEY: TEST_KEY });
      expect(answers[0]).toMatchObject({ instances: [{ id: euWeb, metadata: { zone: "eu-1", tier: "web" } }] });
      expect((answers[0] as { instances: unknown[] }).instances).toHaveLength(1);
    } finally {
      for (const id of [euWeb, ...others]) await server.registry.unregister(id);
    }
  });

  it("docs/operations.md: every route on :4001", async () => {
    const commands = commandsOf("HTTP API", "docs/operations.md#HTTP/JSON API");
    const vars: Record<string, string> = { KEY: TEST_KEY };
    const answers = await runCurlLines(commands, { "localhost:4001": (server.httpUrl as string).replace("http://", "") }, vars);
    expect(answers[0]).toMatchObject({ serviceId: vars.ID, instance: { serviceType: "billing", healthCheckPath: "/ready", metadata: { zone: "eu-1" } } });
    expect(answers.at(-1)).toMatchObject({ instance: { id: vars.ID } });
  });

  it("every metric the docs name (table, alerts) is one the server exports", () => {
    expect(metricsText).not.toBe("");
    const exported = new Set([...metricsText.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
    const named = new Set<string>();
    for (const doc of ["README.md", "docs/operations.md", "docs/architecture.md"]) {
      const text = readFileSync(`${ROOT}${doc}`, "utf8");
      for (const m of text.matchAll(/\b((?:registry|grpc_server)_[a-z_]*[a-z])\b/g)) named.add((m[1] as string).replace(/_(bucket|sum|count)$/, ""));
    }
    const missing = [...named].filter((n) => !exported.has(n)).sort();
    // registry_* names that are not metrics: the proto package and the xDS node metadata field.
    expect(missing.filter((n) => !["registry_v1", "registry_key"].includes(n))).toEqual([]);
  });
});

describe("the router example and the CLI, as the README runs them", () => {
  let server: Awaited<ReturnType<typeof startStack>>;
  let cwd: string;
  const started: Running[] = [];
  let key = "";
  const backends = new Map<string, { id: string; running: Running }>();
  let routerPort = 0;

  beforeAll(async () => {
    // No key: the server generates data/registration-key, as `npm start` does.
    cwd = mkdtempSync(join(tmpdir(), "doc-router-"));
    server = await startStack({ DATA_DIR: join(cwd, "data"), SERVICE_REGISTRATION_KEY: "" });
  });
  afterAll(async () => {
    for (const r of started) killGroup(r);
    await server?.close();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it("backends and a router in their own processes: calls spread over b1 and b2; Ctrl-C unregisters a backend", { timeout: 60_000 }, async () => {
    const commands = commandsOf("router example");
    const env = (): Record<string, string> => ({ SERVICE_REGISTRATION_KEY: key, REGISTRY_ADDRESS: server.address });
    const answers: { answer: Record<string, unknown>; documented: Record<string, unknown> }[] = [];
    for (const c of commands) {
      const where = `${c.block.doc}:${c.line}: \`${c.command}\``;
      if (c.command === "npm start") continue; // the registry: `server`, started above
      if (c.command.startsWith("export ")) {
        key = (await assigned(c, cwd)).value;
        continue;
      }
      if (c.command.includes("backend.ts")) {
        const name = /^NAME=(\S+)/.exec(c.command)?.[1] as string;
        const running = startShell(c.command, { env: env() });
        started.push(running);
        backends.set(name, { running, id: "" });
      } else if (c.command.includes("router.ts")) {
        const running = startShell(c.command.replace("PORT=8080", "PORT=0"), { env: env() });
        started.push(running);
        routerPort = await running.waitFor("router serving line", (l) => (jsonLine(l)?.msg === "router serving" ? (jsonLine(l)?.port as number) : undefined));
      } else {
        if (answers.length === 0) {
          // Every backend has registered, and the router has both ("gets calls within moments").
          for (const [name, b] of backends) {
            b.id = await b.running.waitFor(`${name}'s serving line`, (l) => (jsonLine(l)?.msg === "backend serving" ? String(jsonLine(l)?.id) : undefined));
          }
          await reachAll(routerPort, [...backends.keys()]);
        }
        const r = await runShell(c.command.replace("localhost:8080", `127.0.0.1:${routerPort}`));
        expect(r.code, `${where}: ${r.stderr}`).toBe(0);
        answers.push({ answer: JSON.parse(r.stdout) as Record<string, unknown>, documented: JSON.parse(c.comment ?? "{}") as Record<string, unknown> });
      }
    }
    expect(answers).toHaveLength(2);
    for (const { answer, documented } of answers) {
      expect(Object.keys(answer).sort()).toEqual(Object.keys(documented).sort());
      expect(answer.message).toBe(documented.message);
    }
    expect(answers.map((a) => a.answer.backend).sort()).toEqual(answers.map((a) => a.documented.backend).sort());

    // "stop one with Ctrl-C and it unregisters on the way out"
    const b2 = backends.get("b2");
    expect(b2).toBeDefined();
    await b2?.running.stop("SIGINT");
    expect(server.registry.getByType("greeter", true).instances.map((i) => i.id)).toEqual([backends.get("b1")?.id]);
  });

  it("every CLI command, through npm, next to the server: no flags but the key and PORT in the environment", { timeout: 60_000 }, async () => {
    const commands = commandsOf("CLI");
    const env = { SERVICE_REGISTRATION_KEY: key, PORT: String(server.port) };
    const b1 = backends.get("b1")?.id as string;
    expect(b1, "the router example registered b1").toBeTruthy();
    const byVerb = (verb: string) => commands.filter((c) => c.command.split(" ")[5] === verb);
    const run = async (c: ShellCommand, id?: string) => {
      const r = await runShell(c.command.replace("5f0c1a9e-...", id ?? "5f0c1a9e-..."), { env });
      expect(r.code, `${c.block.doc}:${c.line}: \`${c.command}\`: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const squeeze = (out: string) => out.trim().split("\n").map((l) => l.split(/\s+/).join(" "));

    // Reads first, side by side.
    const jqPipe = commands.find((c) => c.command.includes("| jq ")) as ShellCommand;
    const hasJq = await onPath("jq");
    // watch starts beside them: the instances, then every change.
    const watch = startShell((byVerb("watch")[0] as ShellCommand).command, { env });
    started.push(watch);
    const [services, list, get, ids] = await Promise.all([
      run(byVerb("services")[0] as ShellCommand),
      run(byVerb("list").find((c) => c.command.endsWith("list greeter")) as ShellCommand),
      run(byVerb("get")[0] as ShellCommand, b1),
      // Without jq on the PATH, the same filter (.instances[].id) in JavaScript.
      hasJq
        ? run(jqPipe)
        : run({ ...jqPipe, command: jqPipe.command.split(" | jq")[0] as string }).then((out) =>
            (JSON.parse(out) as { instances: { id: string }[] }).instances.map((i) => `${i.id}\n`).join(""),
          ),
    ]);
    expect(squeeze(services)).toEqual(["SERVICE HEALTHY TOTAL", "greeter 1 1"]);
    expect(squeeze(list)[1]).toMatch(new RegExp(`^${b1} 127\\.0\\.0\\.1:\\d+ HEALTHY `));
    expect(get).toContain(b1);
    expect(ids.trim().split("\n")).toEqual([b1]);

    // A register and an unregister, which watch shows; Ctrl-C ends it.
    try {
      await watch.waitFor("snapshot line", (l) => (l.includes("SNAPSHOT") ? true : undefined));
      const registered = await run(byVerb("register")[0] as ShellCommand);
      const id = /^id: +(\S+)$/m.exec(registered)?.[1] as string;
      expect(registered).toMatch(/^token: +\S{16,}$/m);
      expect(server.registry.getInstance(id).metadata).toEqual({ zone: "eu-1" });
      // The selector picks the new instance (zone=eu-1) and leaves b1 (no zone) out.
      const selected = await run(byVerb("list").find((c) => c.command.includes("--selector")) as ShellCommand);
      expect(squeeze(selected).slice(1).map((row) => row.split(" ")[0])).toEqual([id]);
      await watch.waitFor("registration line", (l) => (l.includes("REGISTERED") && l.includes(id) ? true : undefined));
      const removed = await run(byVerb("unregister")[0] as ShellCommand, id);
      expect(removed).toMatch(new RegExp(`^removed greeter ${id} `));
      await watch.waitFor("removal line", (l) => (l.includes("REMOVED") && l.includes(id) ? true : undefined));
    } finally {
      await watch.stop("SIGINT");
    }
    expect(watch.stderr()).toBe("");
  });

  it("`npm run -s cli -- list --help` lists every flag", async () => {
    const help = inlineCode(readFileSync(`${ROOT}README.md`, "utf8")).find((s) => s.text === "npm run -s cli -- list --help");
    expect(help, "README names `npm run -s cli -- list --help`").toBeDefined();
    const r = await runShell(help?.text as string);
    expect(r.code).toBe(0);
    for (const flag of ["--address", "--key", "--json", "--tls-ca"]) expect(r.stdout).toContain(flag);
  });
});

/** Calls the router until each of `names` has answered, or fails after `timeoutMs`. */
async function reachAll(port: number, names: readonly string[], timeoutMs = 10_000): Promise<void> {
  const missing = new Set(names);
  const deadline = Date.now() + timeoutMs;
  while (missing.size > 0 && Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${port}/hello?name=warmup`).catch(() => undefined);
    const body = res?.ok ? ((await res.json()) as { backend?: string }) : undefined;
    if (body?.backend) missing.delete(body.backend);
    else await new Promise((r) => setTimeout(r, 20));
  }
  expect([...missing], "backends the router never reached").toEqual([]);
}

describe("the compiled server, as docs/operations.md deploys it", () => {
  let running: Running | undefined;
  afterEach(() => killGroup(running));

  it("`node dist/src/cli/main.js serve` serves, reports SERVING, and stops with 0 on SIGTERM", async () => {
    const [command] = commandsOf("compiled server");
    expect(existsSync(`${ROOT}dist/src/cli/main.js`), "dist/ is built by `npm install` (prepare)").toBe(true);
    running = startShell(`exec ${command?.command}`, {
      env: { PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1", STORE: "memory", SERVICE_REGISTRATION_KEY: TEST_KEY },
    });
    const port = await running.waitFor("serving line", servingPort);
    // grpc.health.v1, which every build serves (dist/ is as new as the last `npm install` or `npm run build`).
    expect(await healthStatus(`127.0.0.1:${port}`)).toBe("SERVING");
    expect(await running.stop("SIGTERM")).toBe(0);
  });

  it("the systemd unit and the Dockerfile run that command, from files that exist", () => {
    const [command] = commandsOf("compiled server");
    const ini = BLOCKS.find((b) => b.lang === "ini")?.text ?? "";
    expect(/^ExecStart=\S*\/node (.*)$/m.exec(ini)?.[1]).toBe(command?.command.replace(/^node /, ""));
    const stopSec = Number(/^TimeoutStopSec=(\d+)$/m.exec(ini)?.[1]);
    expect(stopSec * 1000, "TimeoutStopSec above SHUTDOWN_GRACE_MS").toBeGreaterThan(SETTINGS.shutdownGraceMs.default);
    const dockerfile = BLOCKS.find((b) => b.lang === "dockerfile")?.text ?? "";
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    expect((JSON.parse(cmd ?? "[]") as string[]).join(" ")).toBe(command?.command);
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const source of (m[1] as string).split(" ")) expect(existsSync(`${ROOT}${source}`), `Dockerfile: COPY ${source}`).toBe(true);
    }
  });
});

/** Files the change history of docs/performance.md names that are gone since (the row says so). */
const REMOVED_FILES_IN_HISTORY = new Set(["docs/performance.md:src/health/concurrency-gate.ts"]);

describe("what the docs name exists", () => {
  const texts = Object.fromEntries(DOCS.map((d) => [d, readFileSync(`${ROOT}${d}`, "utf8")]));

  it("every relative link leads to a file, and its #anchor to a heading", () => {
    const broken: string[] = [];
    for (const [doc, text] of Object.entries(texts)) {
      for (const { target, line } of relativeLinks(text)) {
        const [path, anchor] = target.split("#") as [string, string | undefined];
        const file = path === "" ? doc : join(doc.includes("/") ? doc.slice(0, doc.lastIndexOf("/")) : ".", path);
        if (!existsSync(`${ROOT}${file}`)) broken.push(`${doc}:${line}: ${target} (no ${file})`);
        else if (anchor && !headingAnchors(readFileSync(`${ROOT}${file}`, "utf8")).has(anchor)) broken.push(`${doc}:${line}: ${target} (no heading #${anchor})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("every repository path in inline code and in commands exists (dist/ as its source)", () => {
    const pathLike = /(?:^|[\s(=`])((?:src|test|bench|examples|docs|proto|gen|scripts|dist)\/[\w.@/-]*[\w/])/g;
    const missing: string[] = [];
    const check = (doc: string, line: number, text: string): void => {
      for (const m of text.matchAll(pathLike)) {
        const path = m[1] as string;
        if (path.startsWith("bench/results")) continue; // written by a bench run, not committed
        if (REMOVED_FILES_IN_HISTORY.has(`${doc}:${path}`)) continue;
        const source = path.startsWith("dist/") ? path.replace(/^dist\//, "").replace(/\.js$/, ".ts") : path;
        if (!existsSync(`${ROOT}${source}`)) missing.push(`${doc}:${line}: ${path}`);
      }
    };
    for (const [doc, text] of Object.entries(texts)) for (const span of inlineCode(text)) check(doc, span.line, span.text);
    for (const c of SHELL) check(c.block.doc, c.line, c.command);
    expect(missing).toEqual([]);
  });

  it("every file the architecture diagram names is a file under src/", () => {
    const diagram = BLOCKS.find((b) => b.where === "docs/architecture.md#Architecture")?.text ?? "";
    const files = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) e.isDirectory() ? walk(join(dir, e.name)) : files.add(e.name);
    };
    walk(`${ROOT}src`);
    const named = [...diagram.matchAll(/\b[\w-]+\.ts\b/g)].map((m) => m[0]);
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((n) => !files.has(n))).toEqual([]);
    for (const m of diagram.matchAll(/\bsrc\/[\w/]+\//g)) expect(existsSync(`${ROOT}${m[0]}`), m[0]).toBe(true);
  });

  it("every `npm run` script and CLI command the docs name exists", () => {
    const scripts = Object.keys((JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as { scripts: Record<string, string> }).scripts);
    const commands = new Set<string>(["serve", "keygen", "rotate-epoch", "exec", ...CLIENT_COMMANDS]);
    const problems: string[] = [];
    const check = (doc: string, line: number, text: string): void => {
      for (const m of text.matchAll(/\bnpm run (?:-s )?([\w:-]+)(?: -- ([\w-]+))?/g)) {
        if (!scripts.includes(m[1] as string)) problems.push(`${doc}:${line}: npm run ${m[1]}: no such script`);
        else if (m[1] === "cli" && m[2] && !m[2].startsWith("-") && !commands.has(m[2])) problems.push(`${doc}:${line}: cli ${m[2]}: no such command`);
      }
      // `service-registry list|get|watch`: the command as installed by `npm link`.
      const installed = /^service-registry ([\w|-]+)/.exec(text);
      for (const name of installed?.[1]?.split("|") ?? []) if (!commands.has(name)) problems.push(`${doc}:${line}: service-registry ${name}: no such command`);
    };
    for (const [doc, text] of Object.entries(texts)) for (const span of inlineCode(text)) check(doc, span.line, span.text);
    for (const c of SHELL) check(c.block.doc, c.line, c.command);
    expect(problems).toEqual([]);
  });
});

describe("TypeScript samples that run", () => {
  let server: Awaited<ReturnType<typeof startStack>>;
  let downPort = 0;
  const savedKey = process.env.SERVICE_REGISTRATION_KEY;
  beforeAll(async () => {
    server = await startStack();
    downPort = await closedPort();
    process.env.SERVICE_REGISTRATION_KEY = TEST_KEY;
  });
  afterAll(async () => {
    if (savedKey === undefined) delete process.env.SERVICE_REGISTRATION_KEY;
    else process.env.SERVICE_REGISTRATION_KEY = savedKey;
    await server?.close();
  });

  it("README's library sample: the seed's options, events, a registration", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "info").mockImplementation(() => {});
    const sample = await runSample(tsSample("README.md#As a library"), { after: "export { registry, instance, token };" });
    const registry = sample.registry as { close(): Promise<void>; getInstance(id: string): unknown };
    try {
      const instance = sample.instance as { id: string };
      expect(registry.getInstance(instance.id)).toMatchObject({ serviceType: "api", host: "10.0.0.7", port: 8080 });
      expect(typeof sample.token).toBe("string");
      expect(log).toHaveBeenCalledWith("registered", "api", "10.0.0.7", 8080);
    } finally {
      await registry.close();
      vi.restoreAllMocks();
    }
  });

  it("docs/client.md's RegistryClient sample, with the first replica down: every call, then close", async () => {
    const sample = await runSample(tsSample("docs/client.md#RegistryClient"), {
      replace: [
        ['"10.0.0.2:4000"', `"127.0.0.1:${downPort}"`],
        ['"10.0.0.3:4000"', `"${server.address}"`],
      ],
      after: "export { id, token, instances, revision, one, services };",
    });
    expect(sample.one).toMatchObject({ id: sample.id, serviceType: "billing", port: 8080, metadata: { zone: "eu-1" } });
    expect(sample.instances).toEqual([expect.objectContaining({ id: sample.id })]);
    expect(sample.services).toEqual([{ serviceType: "billing", healthyCount: 1, totalCount: 1, drainingCount: 0, panic: false }]);
    expect(server.registry.getByType("billing", true).instances.map((i) => i.id), "unregistered with its own credentials").not.toContain(sample.id);
  });

  it("docs/client.md's registerSelf sample: registers, reports it, close() unregisters and removes its signal handler", async () => {
    const sigterm = process.listenerCount("SIGTERM");
    const registered: string[] = [];
    server.registry.on("instanceRegistered", (i) => registered.push(i.id));
    const sample = await runSample(tsSample("docs/client.md#registerSelf()"), {
      before: "const logged: unknown[][] = [];\nconst log = { info: (...a: unknown[]) => logged.push(a), warn: (...a: unknown[]) => logged.push(a) };",
      replace: [
        ['"10.0.0.2:4000"', `"127.0.0.1:${downPort}"`],
        ['"10.0.0.3:4000"', `"${server.address}"`],
      ],
      after: "export { self, logged };",
    });
    const self = sample.self as { id: string };
    // "registered" fires for each registration after the first, which is done when registerSelf resolves.
    expect(sample.logged).toEqual([]);
    expect(registered).toEqual([self.id]);
    expect(server.registry.getByType("billing", true).instances.map((i) => i.id)).not.toContain(self.id);
    expect(process.listenerCount("SIGTERM")).toBe(sigterm);
  });
});
