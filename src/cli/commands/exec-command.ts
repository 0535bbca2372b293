import { sleep } from "../../client/backoff.js";
import { registerSelf, type SelfRegistration } from "../../client/register-self.js";
import type { Instance } from "../../registry/types.js";
import { UsageError } from "./cli-args.js";
import { failureText } from "./client-commands.js";
import { DEFAULT_GRACE_MS, DEFAULT_WAIT_TIMEOUT_MS, execOptions, parseExecCommandLine, type ExecOptions } from "./exec-options.js";
import { addressText, checkKindText, processOutput, type Output } from "./output.js";
import { waitForPort } from "./port-wait.js";
import { connect, CONNECTION_HELP, type CliConnection, type CliEnvironment } from "./registry-connection.js";
import { exitStatus, WrappedCommand, type CommandEnd } from "./wrapped-command.js";

/** `exec --help`. */
const EXEC_HELP = `usage: service-registry exec --type SERVICE_TYPE --port PORT [--host HOST] [--metadata KEY=VALUE ...]
                             [--check session|http|grpc|tcp|ttl] [--health-path /PATH] [--grpc-service NAME]
                             [--tls] [--ttl-ms MS] [--check-timeout-ms MS] [--grace-ms MS] [--wait-timeout-ms MS]
                             [connection flags] -- COMMAND [ARG ...]

Runs COMMAND (any program, in any language) and keeps it registered while it
runs: registers it once PORT accepts connections (on HOST, else 127.0.0.1 or
::1; at most --wait-timeout-ms, default ${DEFAULT_WAIT_TIMEOUT_MS}), keeps it alive as --check
says (session, the default: this command holds a KeepAlive session for it;
ttl: it heartbeats; http, the default when only --health-path is given, grpc,
tcp: the registry probes COMMAND), and registers it again if the registry
loses it. SIGTERM or SIGINT: drains the instance,
waits --grace-ms (default ${DEFAULT_GRACE_MS}), passes the signal on, waits for COMMAND to
exit, unregisters. If COMMAND exits first, it unregisters at once. SIGHUP,
SIGQUIT and SIGUSR2 are passed on as they come. Exits with COMMAND's status
(128 + the signal's number if a signal ended it); 1 if the port never
opened or the registry refused the registration (COMMAND is stopped); 2 usage.
A stop signal before it is registered is passed on at once.
`;

/** What `exec` listens to: `process`, or a stand-in. */
interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** Signals that stop the command, drain first. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT"];
/** Signals passed on to the command as they come (not SIGUSR1: Node's debugger). */
const PASSED_ON: readonly NodeJS.Signals[] = ["SIGHUP", "SIGQUIT", "SIGUSR2"];

/**
 * `exec`: runs a command and keeps it registered while it runs; resolves
 * with the exit status to exit with (see EXEC_HELP).
 */
export async function runExecCommand(
  argv: readonly string[],
  io: Output = processOutput,
  where?: CliEnvironment,
  signals: SignalSource = process,
): Promise<number> {
  let options: ExecOptions;
  let connection: CliConnection;
  try {
    const line = parseExecCommandLine(argv);
    if (line.args.flags["--help"]) {
      // exec prints no answer: no --json.
      io.out(`${EXEC_HELP}\n${CONNECTION_HELP.replace(/\n +--json .*$/m, "")}\n`);
      return 0;
    }
    options = execOptions(line);
    connection = connect(line.args, where);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`service-registry exec: ${err.message} (see service-registry exec --help)\n`);
    return 2;
  }
  const supervisor = new ExecSupervisor(options, connection, io);
  try {
    return await supervisor.run(signals);
  } finally {
    connection.client.close();
  }
}

/** The first of: the command exited, a stop signal came, or `other` settled. */
type Outcome<T> = { readonly kind: "exited"; readonly end: CommandEnd } | { readonly kind: "stop"; readonly signal: NodeJS.Signals } | { readonly kind: "other"; readonly value: T };

/** One `exec` run: the command, its registration, and the signals in between. */
class ExecSupervisor {
  private readonly command: WrappedCommand;
  private resolveStop!: (signal: NodeJS.Signals) => void;
  /** The first stop signal. */
  private readonly stopRequested = new Promise<NodeJS.Signals>((resolve) => (this.resolveStop = resolve));
  private stopSignal: NodeJS.Signals | undefined;
  /** The stop signal has been passed on: later ones go straight to the command. */
  private passedOn = false;
  /** Aborted by a second stop signal during the grace: no more waiting. */
  private readonly hurry = new AbortController();

  constructor(
    private readonly options: ExecOptions,
    private readonly connection: CliConnection,
    private readonly io: Output,
  ) {
    this.command = new WrappedCommand(options.command, options.commandArgs);
  }

  async run(signals: SignalSource): Promise<number> {
    const onStop = (signal: NodeJS.Signals) => (): void => this.onStopSignal(signal);
    const handlers: [NodeJS.Signals, () => void][] = [
      ...STOP_SIGNALS.map((s): [NodeJS.Signals, () => void] => [s, onStop(s)]),
      ...PASSED_ON.map((s): [NodeJS.Signals, () => void] => [s, () => this.command.signal(s)]),
    ];
    for (const [signal, handler] of handlers) signals.on(signal, handler);
    try {
      return await this.supervise();
    } finally {
      for (const [signal, handler] of handlers) signals.off(signal, handler);
    }
  }

  private onStopSignal(signal: NodeJS.Signals): void {
    if (this.stopSignal === undefined) {
      this.stopSignal = signal;
      this.resolveStop(signal);
    } else if (this.passedOn) {
      this.command.signal(signal);
    } else {
      this.hurry.abort();
    }
  }

  private async supervise(): Promise<number> {
    const { port, host } = this.options.instance;
    const portWait = new AbortController();
    const listening = await this.firstOf(
      waitForPort(host !== undefined ? [host] : ["127.0.0.1", "::1"], port, { timeoutMs: this.options.waitTimeoutMs, signal: portWait.signal }),
    );
    portWait.abort();
    if (listening.kind === "exited") return this.ended(listening.end, "before its port opened");
    if (listening.kind === "stop") return this.passOn(listening.signal);
    if (!listening.value) {
      this.say(`${this.options.command} did not accept connections on port ${port} within ${this.options.waitTimeoutMs} ms; stopping it`);
      await this.command.stop(this.options.graceMs);
      return 1;
    }

    const giveUp = new AbortController();
    const registering = this.register(giveUp.signal);
    const registered = await this.firstOf(registering);
    if (registered.kind !== "other") {
      // Not registered yet: stop trying; anything registered meanwhile is removed.
      giveUp.abort();
      const late = await registering;
      if (!(late instanceof Error)) await late.close();
      return registered.kind === "exited" ? this.ended(registered.end) : this.passOn(registered.signal);
    }
    if (registered.value instanceof Error) {
      this.say(`cannot register: ${this.failure(registered.value)}; stopping ${this.options.command}`);
      await this.command.stop(this.options.graceMs);
      return 1;
    }
    return this.keepRegistered(registered.value);
  }

  /** Registered: until the command exits or a stop signal comes. */
  private async keepRegistered(registration: SelfRegistration): Promise<number> {
    const signal = await Promise.race([this.stopRequested, this.command.exited.then(() => undefined)]);
    if (signal === undefined) {
      const end = await this.command.exited;
      this.say(`${this.options.command} exited (status ${exitStatus(end)}); unregistering`);
      // Nothing left to drain: watchers see the removal alone.
      await registration.close({ drain: false });
      return exitStatus(end);
    }
    this.say(`${signal}: draining; passing it on to ${this.options.command} in ${this.options.graceMs} ms`);
    await registration.drain();
    // A command that exits meanwhile (it got the signal too: Ctrl-C reaches the whole group) ends the grace.
    await Promise.race([sleep(this.options.graceMs, this.hurry.signal), this.command.exited]);
    const end = await this.passOnAndWait(signal);
    await registration.close();
    return this.ended(end);
  }

  /** Registers (retrying while the registry is unreachable): the registration, or the error that ended trying. */
  private register(signal: AbortSignal): Promise<SelfRegistration | Error> {
    const { instance } = this.options;
    const onRetry = (err: unknown, delayMs: number): void => this.say(`${this.failure(err)}${delayMs > 0 ? `; retrying in ${delayMs} ms` : ""}`);
    return registerSelf({ ...instance, client: this.connection.client, key: this.connection.key, signal, onRetry }).then(
      (registration) => {
        this.announce(registration.instance, "registered");
        registration.on("registered", (again) => this.announce(again, "registered again"));
        registration.on("lost", (err) => this.say(`the registry lost the instance (${err.codeName}); registering again`));
        registration.on("replaced", (by) => this.say(`another process registered ${addressText(by)} (${by.id}); no longer registering it`));
        registration.on("fallback", () => this.say("the registry holds no sessions: registered again with a TTL check, kept by heartbeats"));
        return registration;
      },
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Passes `signal` on and resolves with the command's exit status. */
  private async passOn(signal: NodeJS.Signals): Promise<number> {
    return this.ended(await this.passOnAndWait(signal));
  }

  private passOnAndWait(signal: NodeJS.Signals): Promise<CommandEnd> {
    this.passedOn = true;
    this.command.signal(signal);
    return this.command.exited;
  }

  private ended(end: CommandEnd, when?: string): number {
    if (end.startError) this.say(`cannot run ${this.options.command}: ${end.startError.message}`);
    else if (when !== undefined) this.say(`${this.options.command} exited ${when} (status ${exitStatus(end)})`);
    return exitStatus(end);
  }

  /** Whichever comes first: the command's exit, the first stop signal, or `other`. */
  private firstOf<T>(other: Promise<T>): Promise<Outcome<T>> {
    return Promise.race([
      this.command.exited.then((end): Outcome<T> => ({ kind: "exited", end })),
      this.stopRequested.then((signal): Outcome<T> => ({ kind: "stop", signal })),
      other.then((value): Outcome<T> => ({ kind: "other", value })),
    ]);
  }

  private announce(instance: Instance, what: string): void {
    this.say(`${what} ${instance.serviceType} at ${addressText(instance)} (${checkKindText(instance)} check), id ${instance.id}`);
  }

  private failure(err: unknown): string {
    return failureText(err, this.connection.client.addresses, this.connection.keySource);
  }

  private say(line: string): void {
    this.io.err(`service-registry exec: ${line}\n`);
  }
}
