/** A command line the user got wrong: exit code 2 with a message and usage hint. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Flags the client commands take; `true` marks a boolean flag. */
const FLAGS = {
  "--address": false,
  "--key": false,
  "--data-dir": false,
  "--timeout-ms": false,
  "--tls-ca": false,
  "--tls-cert": false,
  "--tls-key": false,
  "--json": true,
  "--every-health-check": true,
  "--help": true,
} as const;

type FlagName = keyof typeof FLAGS;

/** A parsed client command line. */
export interface CliArgs {
  readonly positional: string[];
  readonly flags: Partial<Record<FlagName, string | true>>;
}

/** Splits `args` into positionals and known flags (`--flag value`, `--flag=value`); throws UsageError otherwise. */
export function parseCliArgs(args: readonly string[], maxPositional: number): CliArgs {
  const positional: string[] = [];
  const flags: Partial<Record<FlagName, string | true>> = {};
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
    if (!(name in FLAGS)) throw new UsageError(`unknown option ${JSON.stringify(name)}`);
    if (FLAGS[name]) {
      if (eq !== -1) throw new UsageError(`${name} takes no value`);
      flags[name] = true;
      continue;
    }
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined || value === "") throw new UsageError(`${name} needs a value`);
    flags[name] = value;
  }
  if (positional.length > maxPositional) throw new UsageError(`unexpected argument ${JSON.stringify(positional[maxPositional])}`);
  return { positional, flags };
}

/** A flag's string value, if given. */
export function stringFlag(args: CliArgs, name: FlagName): string | undefined {
  const value = args.flags[name];
  return typeof value === "string" ? value : undefined;
}
