import { healthJson, instanceJson as httpInstanceJson, type HealthJson, type InstanceJson } from "../../http/json-mapping.js";
import type { Instance } from "../../registry/types.js";

/** Where a command writes; tests and `main` pass process streams. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

/** process.stdout / process.stderr. */
export const processOutput: Output = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** Left-aligned columns, two spaces apart, header first. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

/** `3s`, `5m`, `2h`, `4d`: how long ago `ms` was. */
export function age(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return `${s}s`;
  if (s < 90 * 60) return `${Math.round(s / 60)}m`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** `k=v,k2=v2`, or `-`. */
export function metadataText(metadata: Readonly<Record<string, string>>): string {
  const entries = Object.entries(metadata);
  return entries.length === 0 ? "-" : entries.map(([k, v]) => `${k}=${v}`).join(",");
}

/** `host:port`, with brackets around IPv6 hosts. */
export function addressText(instance: Instance): string {
  return instance.host.includes(":") ? `[${instance.host}]:${instance.port}` : `${instance.host}:${instance.port}`;
}

/** How an instance is checked, as the contract spells the kind: `HTTP`, `GRPC`, `TCP`, `TTL`, `SESSION`. */
export function checkKindText(instance: Instance): string {
  return (instance.healthCheck?.kind ?? "http").toUpperCase();
}

/**
 * An instance's health as every CLI command prints it, in tables, lines and
 * `--json` alike: `HEALTHY` or `UNHEALTHY`, as the HTTP/JSON API spells it.
 */
export function healthText(instance: Instance): HealthJson {
  return healthJson(instance.health);
}

/**
 * An instance for `--json`: the HTTP/JSON API's instance object
 * (`"health": "HEALTHY"`, RFC 3339 timestamps), so a script reads the CLI's
 * answers and the API's alike.
 */
export function instanceJson(instance: Instance): InstanceJson {
  return httpInstanceJson(instance);
}
