import { status } from "@grpc/grpc-js";
import { RegistryClientError } from "../../client/client-error.js";
import { parseCliArgs, UsageError } from "./cli-args.js";
import { getCommand } from "./get-command.js";
import { listCommand } from "./list-command.js";
import { connect, CONNECTION_HELP, type CliEnvironment } from "./registry-connection.js";
import { processOutput, type Output } from "./output.js";
import { watchCommand } from "./watch-command.js";

/** The commands that talk to a running registry. */
export const CLIENT_COMMANDS = ["list", "get", "watch"] as const;
export type ClientCommand = (typeof CLIENT_COMMANDS)[number];

const HELP: Record<ClientCommand, string> = {
  list: `usage: service-registry list [SERVICE_TYPE] [--json] [connection flags]

Without SERVICE_TYPE: every service type with its healthy and total counts.
With SERVICE_TYPE: its instances, unhealthy ones included.
`,
  get: `usage: service-registry get INSTANCE_ID [--json] [connection flags]

One instance in detail. Exits 1 if the registry does not know it.
`,
  watch: `usage: service-registry watch [SERVICE_TYPE] [--json] [--every-health-check] [connection flags]

The current instances, then every change as it happens (--json: one object
per line), until interrupted. Resumes across registry restarts without
missing a change.
`,
};

/** Whether `name` is a client command. */
export function isClientCommand(name: string | undefined): name is ClientCommand {
  return (CLIENT_COMMANDS as readonly string[]).includes(name ?? "");
}

/**
 * Runs `list`, `get` or `watch` and resolves with the exit code: 0 done,
 * 1 the registry said no (not found, unreachable, refused), 2 usage.
 */
export async function runClientCommand(
  command: ClientCommand,
  argv: readonly string[],
  io: Output = processOutput,
  where?: CliEnvironment,
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  let args;
  try {
    args = parseCliArgs(argv, 1);
    if (args.flags["--help"]) {
      io.out(`${HELP[command]}\n${CONNECTION_HELP}\n`);
      return 0;
    }
    if (command === "get" && args.positional.length !== 1) throw new UsageError("get needs an INSTANCE_ID");
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`service-registry ${command}: ${err.message}\n\n${HELP[command]}`);
    return 2;
  }
  let client;
  try {
    client = connect(args, where);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`service-registry ${command}: ${err.message}\n`);
    return 2;
  }
  const json = args.flags["--json"] === true;
  try {
    switch (command) {
      case "list":
        return await listCommand(client, args.positional[0], json, io);
      case "get":
        return await getCommand(client, args.positional[0] as string, json, io);
      case "watch":
        return await watchCommand(
          client,
          { serviceType: args.positional[0], json, everyHealthCheck: args.flags["--every-health-check"] === true, signal },
          io,
        );
    }
  } catch (err) {
    io.err(`service-registry ${command}: ${describe(err, client.addresses)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** A one-line reason a shell user can act on. */
function describe(err: unknown, addresses: readonly string[]): string {
  if (!(err instanceof RegistryClientError)) return (err as Error).message;
  switch (err.code) {
    case status.NOT_FOUND:
      return `${err.details} (NOT_FOUND)`;
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return `cannot reach the registry at ${addresses.join(", ")} (${err.codeName}: ${err.details})`;
    case status.UNAUTHENTICATED:
      return `the registry refused the registration key (${err.details}); check --key or SERVICE_REGISTRATION_KEY`;
    default:
      return `${err.details} (${err.codeName})`;
  }
}
