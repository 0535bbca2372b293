/** The value of a `--name=value` command-line flag of a bench tool, or `fallback`. */
export function arg(name: string, fallback: string): string {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
}
