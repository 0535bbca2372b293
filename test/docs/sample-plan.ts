import type { DocBlock, ShellCommand } from "./doc-blocks.js";

/**
 * What happens to each sample of README.md and docs/*.md. Every shell
 * command must match exactly one rule and every other non-TypeScript block
 * one entry; a sample added later fails doc-samples.test.ts until someone
 * decides here how it is tried, or says why it is not. (TypeScript samples
 * need no entry: each is type-checked; TS_SAMPLES says which also run.)
 */

/** The groups of doc-samples.test.ts that run commands. */
export type Runner = "quick start" | "HTTP API" | "router example" | "CLI" | "compiled server";

export type How =
  | { readonly run: Runner; readonly note?: string }
  | { readonly coveredBy: string; readonly note?: string }
  | { readonly notRun: string };

export interface ShellRule {
  /** `doc#heading` of the block. */
  readonly where: string;
  readonly command: string | RegExp;
  readonly how: How;
}

const SYSTEM_CHANGE = "changes the machine (a system user, /etc, a systemd unit, the journal): needs root and systemd as PID 1";
const BENCH = "a benchmark or profiling tool: minutes of load on every CPU (CI runs `npm run bench -- --quick` to keep them working); the files it names are checked to exist";

export const SHELL_RULES: readonly ShellRule[] = [
  // README: Quick start
  { where: "README.md#Quick start", command: "npm install && npm start", how: { run: "quick start", note: "`npm start` from a fresh copy with no key; node_modules is already installed" } },
  { where: "README.md#Quick start", command: "npm install && npm test", how: { notRun: "runs the whole suite, this test included; CI (.ci/run) runs `npm test`" } },
  { where: "README.md#Quick start", command: "export SERVICE_REGISTRATION_KEY=$(npm run -s cli -- keygen)", how: { run: "quick start" } },
  { where: "README.md#Quick start", command: "npm start", how: { run: "quick start" } },
  // README: grpcurl, HTTP
  { where: "README.md#grpcurl", command: /^grpcurl /, how: { coveredBy: "test/surfaces/docs-grpcurl.test.ts", note: "through reflection; grpcurl itself is not installable here" } },
  { where: "README.md#HTTP/JSON API, metrics, health", command: /^(KEY=|curl )/, how: { run: "HTTP API" } },
  // README: Selectors
  { where: "README.md#Selectors", command: /^grpcurl /, how: { coveredBy: "test/surfaces/docs-grpcurl.test.ts", note: "through reflection; grpcurl itself is not installable here" } },
  { where: "README.md#Selectors", command: /^curl /, how: { run: "HTTP API" } },
  // README: router example
  { where: "README.md#Router example", command: "npm start", how: { run: "router example", note: "the registry runs in-process with serve's wiring (test/support/stack.ts); `npm start` itself runs in the quick start group" } },
  { where: "README.md#Router example", command: "export SERVICE_REGISTRATION_KEY=$(cat data/registration-key)", how: { run: "router example" } },
  { where: "README.md#Router example", command: /^NAME=b\d node --import tsx examples\/router\/backend\.ts$/, how: { run: "router example", note: "REGISTRY_ADDRESS names the test registry (the default is 127.0.0.1:4000)" } },
  { where: "README.md#Router example", command: "PORT=8080 node --import tsx examples/router/router.ts", how: { run: "router example", note: "PORT=0 instead of 8080" } },
  { where: "README.md#Router example", command: /^curl 'localhost:8080\/hello\?name=Ada'$/, how: { run: "router example" } },
  // README: CLI
  { where: "README.md#CLI", command: /^npm run -s cli -- /, how: { run: "CLI", note: "PORT names the test registry; 5f0c1a9e-... is a real id" } },
  // README and docs/client.md: exec
  { where: "README.md#Any language: `service-registry exec`", command: /^service-registry exec /, how: { coveredBy: "test/cli/exec-command.test.ts", note: "exec wrapping a real program (a Node HTTP server standing for the reader's Python one) against a real registry: its start-up wait, drain and grace, exit statuses" } },
  { where: "docs/client.md#`service-registry exec`", command: /^service-registry exec /, how: { coveredBy: "test/cli/exec-command.test.ts", note: "the same flags (--check http --health-path /health) on a real program; ./billing-server is the reader's" } },
  // docs/operations.md
  { where: "docs/operations.md#grpcurl", command: "KEY=$(cat data/registration-key)", how: { run: "quick start" } },
  { where: "docs/operations.md#grpcurl", command: /^grpcurl /, how: { coveredBy: "test/surfaces/docs-grpcurl.test.ts", note: "through reflection; grpcurl itself is not installable here" } },
  { where: "docs/operations.md#HTTP/JSON API", command: /^curl /, how: { run: "HTTP API" } },
  { where: "docs/operations.md#Deployment", command: "npm ci", how: { notRun: "reinstalls this checkout's node_modules, which every test uses; `npm install` (with its `prepare` build) is what the test environment is made with" } },
  { where: "docs/operations.md#Deployment", command: "npm run build", how: { coveredBy: "test/process/entry-points.test.ts", note: "`npm install` runs it (`prepare`); the entry-points test imports its output; rebuilding dist/ here would race the tests that read it" } },
  { where: "docs/operations.md#Deployment", command: "npm prune --omit=dev", how: { notRun: "removes the dev dependencies these tests run on" } },
  { where: "docs/operations.md#Deployment", command: "node dist/src/cli/main.js serve", how: { run: "compiled server" } },
  { where: "docs/operations.md#systemd", command: /^(sudo |echo "SERVICE_REGISTRATION_KEY=\$\(npm run -s cli -- keygen\)" \| sudo |journalctl )/, how: { notRun: SYSTEM_CHANGE } },
  { where: "docs/operations.md#Container", command: /^docker (build|run) /, how: { notRun: "needs a Docker daemon and the network (Debian and npm mirrors) to build the image; the Dockerfile's COPY sources and CMD are checked" } },
  // docs/replicas.md, docs/performance.md
  { where: "docs/replicas.md#Running several replicas on etcd", command: /^STORE=etcd ETCD_ENDPOINTS=\S+ SERVICE_REGISTRATION_KEY=\.\.\. REPLICA_ID=\$\(hostname\) npm start$/, how: { coveredBy: "test/etcd/replicas.test.ts", note: "real replicas on a real etcd with STORE=etcd, ETCD_ENDPOINTS and a key (skipped when etcd is not on the PATH); three etcd hosts are the reader's" } },
  { where: "docs/performance.md#Performance", command: /^(npm run bench|node (--expose-gc )?--import tsx bench\/(?:tools|investigations)\/)/, how: { notRun: BENCH } },
];

/** A block that is not a shell or TypeScript sample, and what is checked of it. */
export interface OtherBlock {
  readonly where: string;
  readonly lang: string;
  readonly how: string;
}

export const OTHER_BLOCKS: readonly OtherBlock[] = [
  { where: "docs/architecture.md#Architecture", lang: "", how: "a diagram; every file name in it is checked to exist under src/" },
  { where: "docs/architecture.md#The write path", lang: "", how: "a diagram of the write path; every file name in it is checked to exist under src/" },
  { where: "docs/operations.md#Metrics", lang: "yaml", how: "Prometheus scrape configuration for the reader's hosts; its port is HTTP_PORT's default" },
  { where: "docs/operations.md#Alerts worth setting", lang: "yaml", how: "Prometheus rules: every metric they name is checked against a real server's /metrics" },
  { where: "docs/operations.md#systemd", lang: "ini", how: "a systemd unit: its ExecStart is checked to be the deployment command run here" },
  { where: "docs/xds.md#Bootstrap files", lang: "json", how: "the bootstrap every gRPC language reads; test/support/xds-backend.ts (xdsBootstrap) builds the same one for the grpc-js and Python clients the tests run" },
  { where: "docs/xds.md#Go (grpc-go)", lang: "go", how: "grpc-go's documented xDS dial; no Go toolchain new enough for today's grpc-go is installable here" },
  { where: "docs/xds.md#Java (grpc-java)", lang: "java", how: "grpc-java's documented xDS dial; no Java toolchain is installed here" },
  { where: "docs/xds.md#C-core: Python, C++, Ruby, PHP, C#", lang: "python", how: "what test/polyglot/xds_client.py does, run by test/polyglot/python-xds.test.ts with Debian's python3-grpcio and a bootstrap file" },
  { where: "docs/operations.md#Container", lang: "dockerfile", how: "its COPY sources are checked to exist and its CMD to be the deployment command run here" },
];

/** The rule a command falls under, or why it has none (no rule, or several). */
export function ruleFor(c: ShellCommand): ShellRule | string {
  const matches = SHELL_RULES.filter(
    (r) => r.where === c.block.where && (typeof r.command === "string" ? r.command === c.command : r.command.test(c.command)),
  );
  if (matches.length === 1) return matches[0] as ShellRule;
  return `${c.block.doc}:${c.line} (${c.block.where}): \`${c.command}\` matches ${matches.length} rules in sample-plan.ts`;
}

/** The entry a non-shell, non-TypeScript block falls under, if any. */
export function otherBlockEntry(b: DocBlock): OtherBlock | undefined {
  return OTHER_BLOCKS.find((o) => o.where === b.where && o.lang === b.lang);
}
