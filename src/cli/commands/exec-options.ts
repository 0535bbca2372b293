import type { RegisterOptions } from "../../client/registry-client.js";
import { parseCliArgs, stringFlag, UsageError, type CliArgs, type CommandSyntax } from "./cli-args.js";
import { instanceFlags, wholeNumberFlag } from "./register-command.js";

/** How long `exec` waits between draining the instance and passing the stop signal on (docs/client.md). */
export const DEFAULT_GRACE_MS = 5000;
/** How long `exec` waits for the command's port to accept connections (docs/client.md). */
export const DEFAULT_WAIT_TIMEOUT_MS = 30_000;

/** The flags `exec` takes before `--`, besides the connection flags. */
const EXEC_SYNTAX: CommandSyntax = {
  maxPositional: 0,
  flags: [
    "--type",
    "--port",
    "--host",
    "--metadata",
    "--health-path",
    "--check",
    "--ttl-ms",
    "--grpc-service",
    "--check-timeout-ms",
    "--tls",
    "--grace-ms",
    "--wait-timeout-ms",
  ],
};

/** What `exec` runs and how it registers it. */
export interface ExecOptions {
  /** The program to start, and its arguments: everything after `--`. */
  readonly command: string;
  readonly commandArgs: readonly string[];
  /** The instance to register once the command's port accepts connections. */
  readonly instance: RegisterOptions;
  readonly graceMs: number;
  readonly waitTimeoutMs: number;
}

/** The command line of `exec`: its own flags (before `--`) and the command (after it, undefined without `--`). */
export interface ExecCommandLine {
  readonly args: CliArgs;
  readonly command: readonly string[] | undefined;
}

/** Splits `argv` at the first `--` and parses the flags before it; UsageError for a flag exec does not take. */
export function parseExecCommandLine(argv: readonly string[]): ExecCommandLine {
  const split = argv.indexOf("--");
  const args = parseCliArgs(split === -1 ? argv : argv.slice(0, split), EXEC_SYNTAX);
  return { args, command: split === -1 ? undefined : argv.slice(split + 1) };
}

/**
 * What `exec --type T --port P [...] -- COMMAND [ARG ...]` asks for. Throws
 * UsageError, naming the problem, for no `--` or nothing after it, a missing
 * `--type` or `--port`, or a flag value that cannot be right.
 *
 * @example execOptions(parseExecCommandLine(["--type", "billing", "--port", "8080", "--", "./server"]))
 */
export function execOptions({ args, command }: ExecCommandLine): ExecOptions {
  if (args.flags["--json"]) throw new UsageError("exec prints no answer to format: --json is not an exec option");
  if (command === undefined) throw new UsageError("exec needs -- and then the command to run");
  const [program, ...commandArgs] = command;
  if (program === undefined || program === "") throw new UsageError("exec needs a command after --");
  const serviceType = stringFlag(args, "--type");
  if (serviceType === undefined) throw new UsageError("exec needs --type SERVICE_TYPE");
  return {
    command: program,
    commandArgs,
    instance: instanceFlags(args, serviceType, "exec"),
    graceMs: wholeNumberFlag(args, "--grace-ms") ?? DEFAULT_GRACE_MS,
    waitTimeoutMs: wholeNumberFlag(args, "--wait-timeout-ms") ?? DEFAULT_WAIT_TIMEOUT_MS,
  };
}
