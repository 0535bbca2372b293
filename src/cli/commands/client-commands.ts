import { status } from "@grpc/grpc-js";
import { RegistryClientError } from "../../client/client-error.js";
import type { RegistryClient } from "../../client/registry-client.js";
import { parseCliArgs, selectorFlag, UsageError, type CliArgs, type CommandSyntax } from "./cli-args.js";
import { getCommand } from "./get-command.js";
import { listCommand, servicesCommand } from "./list-command.js";
import { registerCommand, registerOptions } from "./register-command.js";
import { connect, CONNECTION_HELP, type CliConnection, type CliEnvironment, type KeySource } from "./registry-connection.js";
import { processOutput, type Output } from "./output.js";
import { drainCommand } from "./drain-command.js";
import { unregisterCommand } from "./unregister-command.js";
import { watchCommand } from "./watch-command.js";

/** The commands that talk to a running registry. */
export const CLIENT_COMMANDS = ["list", "services", "get", "watch", "register", "unregister", "drain"] as const;
export type ClientCommand = (typeof CLIENT_COMMANDS)[number];

/** What a command does once its command line is checked. */
type Run = (client: RegistryClient) => Promise<number>;

interface CommandSpec {
  readonly syntax: CommandSyntax;
  readonly help: string;
  /** Checks the command line (throwing UsageError) before anything is sent. */
  prepare(args: CliArgs, json: boolean, io: Output, signal: AbortSignal): Run;
}

const COMMANDS: Record<ClientCommand, CommandSpec> = {
  list: {
    syntax: { maxPositional: 1, flags: ["--selector"] },
    help: `usage: service-registry list [SERVICE_TYPE [--selector KEY=VALUE[,KEY=VALUE...]]] [--json] [connection flags]

Without SERVICE_TYPE: every service type with its healthy and total counts
(as \`services\`). With SERVICE_TYPE: its instances, unhealthy ones included;
--selector keeps only those whose metadata has every KEY=VALUE given
(e.g. --selector zone=eu-1,tier=web; may be repeated).
`,
    prepare: (args, json, io) => {
      const serviceType = args.positional[0];
      const selector = selectorFlag(args);
      if (selector && serviceType === undefined) throw new UsageError("--selector needs a SERVICE_TYPE");
      return (client) => listCommand(client, serviceType, json, io, selector);
    },
  },
  services: {
    syntax: { maxPositional: 0 },
    help: `usage: service-registry services [--json] [connection flags]

Every service type with its healthy and total counts.
`,
    prepare: (_args, json, io) => (client) => servicesCommand(client, json, io),
  },
  get: {
    syntax: { maxPositional: 1 },
    help: `usage: service-registry get INSTANCE_ID [--json] [connection flags]

One instance in detail. Exits 1 if the registry does not know it.
`,
    prepare: (args, json, io) => {
      const id = required(args, "get needs an INSTANCE_ID");
      return (client) => getCommand(client, id, json, io);
    },
  },
  watch: {
    syntax: { maxPositional: 1, flags: ["--every-health-check", "--selector"] },
    help: `usage: service-registry watch [SERVICE_TYPE] [--selector KEY=VALUE[,KEY=VALUE...]] [--json]
                              [--every-health-check] [connection flags]

The current instances, then every change as it happens (--json: one object
per line), until interrupted. Resumes across registry restarts without
missing a change. --selector shows only instances whose metadata has every
KEY=VALUE given (e.g. --selector zone=eu-1; may be repeated); the registry
filters at the source.
`,
    prepare: (args, json, io, signal) => {
      const selector = selectorFlag(args);
      return (client) =>
        watchCommand(
          client,
          { serviceType: args.positional[0], json, everyHealthCheck: args.flags["--every-health-check"] === true, selector, signal },
          io,
        );
    },
  },
  register: {
    syntax: {
      maxPositional: 1,
      flags: ["--port", "--host", "--metadata", "--health-path", "--check", "--ttl-ms", "--grpc-service", "--check-timeout-ms", "--tls"],
    },
    help: `usage: service-registry register SERVICE_TYPE --port PORT [--host HOST] [--metadata KEY=VALUE ...]
                                 [--check http|grpc|tcp|ttl|session] [--health-path /PATH]
                                 [--grpc-service NAME] [--tls] [--ttl-ms MS] [--check-timeout-ms MS]
                                 [--json] [connection flags]

Registers an instance with the registration key and prints its id and its
token (shown only this once). --host defaults to the address the registry
sees this command come from; --metadata may be repeated. --json: the
Register answer.

How the registry tells the instance is alive (--check, default http):
  http     it GETs http://HOST:PORT/PATH (--health-path, default /health)
  grpc     it calls grpc.health.v1 Health/Check on HOST:PORT, asking about
           --grpc-service (default "": the server as a whole); --tls for TLS
  tcp      it connects to HOST:PORT
  ttl      the instance calls Heartbeat at least every --ttl-ms MS
  session  the instance holds a KeepAlive stream open
--check-timeout-ms bounds one probe (http, grpc, tcp; default the registry's).
For ttl and session this command only registers: the instance must then
heartbeat, or hold its session, itself, with the id and token printed here
(the SDK's registerSelf does both).
`,
    prepare: (args, json, io) => {
      const options = registerOptions(args);
      return (client) => registerCommand(client, options, json, io);
    },
  },
  unregister: {
    syntax: { maxPositional: 1 },
    help: `usage: service-registry unregister INSTANCE_ID [--json] [connection flags]

Removes an instance with the registration key and prints what was removed.
Exits 1 if the registry does not know it.
`,
    prepare: (args, json, io) => {
      const id = required(args, "unregister needs an INSTANCE_ID");
      return (client) => unregisterCommand(client, id, json, io);
    },
  },
  drain: {
    syntax: { maxPositional: 1 },
    help: `usage: service-registry drain INSTANCE_ID [--json] [connection flags]

Marks an instance draining with the registration key: routers stop picking it,
the registry still probes it, and it is removed when it unregisters or at the
registry's drain deadline (DRAIN_TIMEOUT_MS). Exits 1 if the registry does
not know it.
`,
    prepare: (args, json, io) => {
      const id = required(args, "drain needs an INSTANCE_ID");
      return (client) => drainCommand(client, id, json, io);
    },
  },
};

function required(args: CliArgs, message: string): string {
  const value = args.positional[0];
  if (value === undefined) throw new UsageError(message);
  return value;
}

/** Whether `name` is a client command. */
export function isClientCommand(name: string | undefined): name is ClientCommand {
  return (CLIENT_COMMANDS as readonly string[]).includes(name ?? "");
}

/**
 * Runs a client command and resolves with the exit code: 0 done, 1 the
 * registry said no (not found, unreachable, refused, invalid argument),
 * 2 usage.
 */
export async function runClientCommand(
  command: ClientCommand,
  argv: readonly string[],
  io: Output = processOutput,
  where?: CliEnvironment,
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  const spec = COMMANDS[command];
  let run: Run;
  let connection: CliConnection;
  try {
    const args = parseCliArgs(argv, spec.syntax);
    if (args.flags["--help"]) {
      io.out(`${spec.help}\n${CONNECTION_HELP}\n`);
      return 0;
    }
    run = spec.prepare(args, args.flags["--json"] === true, io, signal);
    connection = connect(args, where);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`service-registry ${command}: ${err.message} (see service-registry ${command} --help)\n`);
    return 2;
  }
  const { client, keySource } = connection;
  try {
    return await run(client);
  } catch (err) {
    io.err(`service-registry ${command}: ${failureText(err, client.addresses, keySource)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** A one-line reason a shell user can act on; it names the key's source, never the key. */
export function failureText(err: unknown, addresses: readonly string[], keySource: KeySource): string {
  if (!(err instanceof RegistryClientError)) return (err as Error).message;
  const answer = `(${err.codeName}: ${err.details})`;
  switch (err.code) {
    case status.NOT_FOUND:
      return `${err.details} (NOT_FOUND)`;
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return `cannot reach the registry at ${addresses.join(", ")} ${answer}`;
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return `the registry refused the registration key from ${keySource.label} ${answer}; ${keyHint(keySource)}`;
    case status.INVALID_ARGUMENT:
      return `the registry rejected the request: ${err.details} (INVALID_ARGUMENT)`;
    default:
      return `${err.details} (${err.codeName})`;
  }
}

function keyHint(source: KeySource): string {
  if (source.from === "file") {
    return "that file holds the key a server generated when it ran without SERVICE_REGISTRATION_KEY; if the server has one now, set SERVICE_REGISTRATION_KEY here too or pass --key";
  }
  return "pass the server's key with --key or SERVICE_REGISTRATION_KEY";
}
