/** A command line the user got wrong: exit code 2 with a message and usage hint. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** How a flag takes its value: `switch` none, `value` one, `repeat` one per occurrence. */
type FlagKind = "switch" | "value" | "repeat";

/** Every flag a client command may take. */
const FLAGS = {
  "--address": "value",
  "--key": "value",
  "--data-dir": "value",
  "--timeout-ms": "value",
  "--tls-ca": "value",
  "--tls-cert": "value",
  "--tls-key": "value",
  "--json": "switch",
  "--help": "switch",
  "--every-health-check": "switch",
  "--port": "value",
  "--host": "value",
  "--metadata": "repeat",
  "--health-path": "value",
  "--check": "value",
  "--ttl-ms": "value",
  "--grpc-service": "value",
  "--check-timeout-ms": "value",
  "--tls": "switch",
  "--selector": "repeat",
  "--type": "value",
  "--grace-ms": "value",
  "--wait-timeout-ms": "value",
} as const satisfies Record<string, FlagKind>;

/** A flag's name, `--` included. */
export type FlagName = keyof typeof FLAGS;

/** Flags every client command takes: where the registry is, the key, the output format. */
const COMMON_FLAGS: readonly FlagName[] = [
  "--address",
  "--key",
  "--data-dir",
  "--timeout-ms",
  "--tls-ca",
  "--tls-cert",
  "--tls-key",
  "--json",
  "--help",
];

/** A parsed client command line. */
export interface CliArgs {
  readonly positional: string[];
  readonly flags: Partial<Record<FlagName, string | true | string[]>>;
}

/** What a command accepts besides the common flags. */
export interface CommandSyntax {
  readonly maxPositional: number;
  /** The command's own flags (e.g. `--port` for `register`). */
  readonly flags?: readonly FlagName[];
}

/**
 * Splits `args` into positionals and flags (`--flag value`, `--flag=value`);
 * throws UsageError for a flag this command does not take.
 */
export function parseCliArgs(args: readonly string[], syntax: CommandSyntax): CliArgs {
  const allowed = new Set<string>([...COMMON_FLAGS, ...(syntax.flags ?? [])]);
  const positional: string[] = [];
  const flags: Partial<Record<FlagName, string | true | string[]>> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "-h") {
      flags["--help"] = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = (eq === -1 ? arg : arg.slice(0, eq)) as FlagName;
    if (!allowed.has(name)) throw new UsageError(`unknown option ${JSON.stringify(name)}`);
    const kind: FlagKind = FLAGS[name];
    if (kind === "switch") {
      if (eq !== -1) throw new UsageError(`${name} takes no value`);
      flags[name] = true;
      continue;
    }
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined || value === "") throw new UsageError(`${name} needs a value`);
    if (kind === "repeat") {
      const list = flags[name];
      flags[name] = Array.isArray(list) ? [...list, value] : [value];
    } else {
      flags[name] = value;
    }
  }
  if (positional.length > syntax.maxPositional) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positional[syntax.maxPositional])}`);
  }
  return { positional, flags };
}

/** A flag's string value, if given. */
export function stringFlag(args: CliArgs, name: FlagName): string | undefined {
  const value = args.flags[name];
  return typeof value === "string" ? value : undefined;
}

/** Every value of a repeatable flag, in order (none: `[]`). */
export function listFlag(args: CliArgs, name: FlagName): readonly string[] {
  const value = args.flags[name];
  return Array.isArray(value) ? value : [];
}

/**
 * The metadata selector of `--selector zone=eu-1[,tier=web]` (repeatable;
 * every term ANDed), or undefined when none is given. Throws UsageError for a
 * term that is not KEY=VALUE or a key given twice; whether keys and values are
 * acceptable is the registry's to say.
 *
 * @example selectorFlag(parseCliArgs(["--selector", "zone=eu-1,tier=web"], syntax)) // { zone: "eu-1", tier: "web" }
 */
export function selectorFlag(args: CliArgs): Record<string, string> | undefined {
  const terms = listFlag(args, "--selector").flatMap((value) => value.split(","));
  if (terms.length === 0) return undefined;
  const selector: Record<string, string> = {};
  for (const term of terms) {
    const eq = term.indexOf("=");
    if (eq <= 0) throw new UsageError(`--selector ${JSON.stringify(term)}: expected KEY=VALUE`);
    const key = term.slice(0, eq);
    // Equality on one key cannot hold for two values: a repeat is a mistake, not an OR.
    if (Object.hasOwn(selector, key)) throw new UsageError(`--selector ${JSON.stringify(key)} given twice`);
    Object.defineProperty(selector, key, { value: term.slice(eq + 1), enumerable: true });
  }
  return selector;
}
