import type { RegistryClient } from "../../client/registry-client.js";
import type { RegistryClientError } from "../../client/client-error.js";
import type { RegistryWatchEvent } from "../../client/watch-events.js";
import type { Instance } from "../../registry/types.js";
import { addressText, healthText, instanceJson, type Output } from "./output.js";

/** Options of `watch`. */
export interface WatchCommandOptions {
  readonly serviceType?: string;
  readonly json: boolean;
  readonly everyHealthCheck: boolean;
  /** Only instances whose metadata matches (`--selector`). */
  readonly selector?: Readonly<Record<string, string>> | undefined;
  /** Ends the watch (Ctrl-C). */
  readonly signal: AbortSignal;
}

/**
 * `watch [type]`: the current instances, then every change as it happens, one
 * line each (`--json`: one JSON object per line); with `--selector`, only
 * those of instances whose metadata matches. Survives registry restarts
 * and failover (it resumes without missing a change); fails at once if the
 * registry cannot be reached at the start.
 */
export async function watchCommand(client: RegistryClient, options: WatchCommandOptions, io: Output): Promise<number> {
  let started = false;
  let startError: RegistryClientError | undefined;
  const watch = client.watch({
    serviceType: options.serviceType,
    everyHealthCheck: options.everyHealthCheck,
    ...(options.selector ? { selector: options.selector } : {}),
    signal: options.signal,
    onDisconnect: ({ error, delayMs, revision }) => {
      if (!started) {
        startError = error;
        watch.close();
        return;
      }
      io.err(`watch: disconnected (${error.codeName}: ${error.details}); resuming after revision ${revision} in ${delayMs} ms\n`);
    },
  });
  for await (const event of watch) {
    started = true;
    io.out(options.json ? `${JSON.stringify(eventJson(event))}\n` : humanLine(event));
  }
  if (startError) throw startError;
  return 0;
}

function eventJson(event: RegistryWatchEvent): Record<string, unknown> {
  if (event.type === "snapshot") return { ...event, instances: event.instances.map(instanceJson) };
  if ("instance" in event) return { ...event, instance: instanceJson(event.instance) };
  return { ...event };
}

function humanLine(event: RegistryWatchEvent): string {
  const time = new Date().toISOString().slice(11, 19);
  const head = (label: string): string => `${time}  ${label.padEnd(10)}  rev ${String(event.revision).padEnd(6)}`;
  const about = (i: Instance): string => `${i.serviceType}  ${i.id}  ${addressText(i)}`;
  switch (event.type) {
    case "snapshot":
      return [
        `${head("SNAPSHOT")}  ${event.instances.length} instance${event.instances.length === 1 ? "" : "s"}\n`,
        ...event.instances.map((i) => `${" ".repeat(time.length + 2)}${about(i)}  ${healthText(i)}\n`),
      ].join("");
    case "reset":
      return `${head("RESET")}  the registry cannot resume this watch (its data changed); a fresh snapshot follows\n`;
    case "instanceRegistered":
      return `${head("REGISTERED")}  ${about(event.instance)}\n`;
    case "instanceRemoved":
      return `${head("REMOVED")}  ${about(event.instance)}  (${event.reason.replaceAll("_", " ")})\n`;
    case "instanceDraining":
      return `${head("DRAINING")}  ${about(event.instance)}\n`;
    case "healthCheckPassed":
      return `${head("HEALTHY")}  ${about(event.instance)}\n`;
    case "healthCheckFailed":
      return `${head("UNHEALTHY")}  ${about(event.instance)}  ${event.failureReason}\n`;
    case "probe":
      return `${head(event.passed ? "PROBE OK" : "PROBE FAIL")}  ${about(event.instance)}${event.failureReason ? `  ${event.failureReason}` : ""}\n`;
    case "bookmark":
      return "";
  }
}
