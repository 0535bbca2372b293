import { ChannelCredentials, Metadata, type Client, type ServiceError } from "@grpc/grpc-js";
import { GrpcReflection, type Descriptor } from "grpc-js-reflection-client";

/** protobufjs's Type, as the reflection client's own protobufjs version defines it. */
type Type = ReturnType<ReturnType<Descriptor["getProtobufJsRoot"]>["lookupType"]>;

/**
 * Runs documented grpcurl command lines the way grpcurl runs them: every
 * symbol, method and message type is discovered through server reflection
 * (v1, as grpcurl asks first), request JSON is checked against the reflected
 * message type as strictly as grpcurl checks it (unknown field names fail),
 * and the call goes through a client built from the reflected descriptors
 * only. grpcurl itself is not packaged for this machine; this drives the same
 * reflection calls so the docs' commands are verified against a real server.
 */

/** One grpcurl invocation, parsed. */
export interface GrpcurlCommand {
  readonly text: string;
  readonly plaintext: boolean;
  readonly headers: readonly [string, string][];
  readonly data: string | undefined;
  readonly address: string;
  readonly verb: { kind: "list" | "describe"; symbol?: string } | { kind: "invoke"; service: string; method: string };
}

type InvokeVerb = { kind: "invoke"; service: string; method: string };

/** What running a command produced. */
export type GrpcurlResult =
  | { kind: "list"; names: string[] }
  | { kind: "describe"; symbol: string; files: string[] }
  | { kind: "invoke"; responses: Record<string, unknown>[] };

/**
 * The grpcurl command lines of the ```sh blocks of a Markdown document, with
 * line continuations joined, in document order.
 */
export function grpcurlLines(markdown: string): string[] {
  const lines: string[] = [];
  for (const block of markdown.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
    const joined = (block[1] as string).replace(/\\\n\s*/g, "");
    for (const line of joined.split("\n")) if (/^\s*grpcurl\s/.test(line)) lines.push(line.trim());
  }
  return lines;
}

/** Splits a shell line into words: quotes, backslash escapes and `$VAR` expansion. */
export function shellWords(line: string, vars: Record<string, string>): string[] {
  const words: string[] = [];
  let word: string | undefined;
  const expand = (rest: string): [string, number] => {
    const m = /^\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))/.exec(rest);
    if (!m) throw new Error(`unsupported shell syntax at ${JSON.stringify(rest.slice(0, 12))} in: ${line}`);
    const name = (m[1] ?? m[2]) as string;
    const value = vars[name];
    if (value === undefined) throw new Error(`$${name} is not set when running: ${line}`);
    return [value, m[0].length];
  };
  for (let i = 0; i < line.length; ) {
    const c = line[i] as string;
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unterminated ' in: ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      word ??= "";
      i++;
      for (;;) {
        const d = line[i];
        if (d === undefined) throw new Error(`unterminated " in: ${line}`);
        i++;
        if (d === '"') break;
        if (d === "\\" && /["\\$`]/.test(line[i] ?? "")) word += line[i++];
        else if (d === "$") {
          const [value, used] = expand(line.slice(i - 1));
          word += value;
          i += used - 1;
        } else if (d === "`") throw new Error(`command substitution is not supported: ${line}`);
        else word += d;
      }
    } else if (c === "$") {
      const [value, used] = expand(line.slice(i));
      word = (word ?? "") + value;
      i += used;
    } else if (c === "\\") {
      word = (word ?? "") + (line[i + 1] ?? "");
      i += 2;
    } else if (/[|;&<>()`]/.test(c)) {
      throw new Error(`pipes, redirections and subshells are not supported: ${line}`);
    } else {
      word = (word ?? "") + c;
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** Parses a grpcurl command line; throws on any flag grpcurl users would need that is not emulated. */
export function parseGrpcurl(line: string, vars: Record<string, string>): GrpcurlCommand {
  const words = shellWords(line, vars);
  if (words[0] !== "grpcurl") throw new Error(`not a grpcurl command: ${line}`);
  let plaintext = false;
  const headers: [string, string][] = [];
  let data: string | undefined;
  const positional: string[] = [];
  for (let i = 1; i < words.length; i++) {
    const w = words[i] as string;
    if (w === "-plaintext") plaintext = true;
    else if (w === "-H") {
      const h = words[++i] ?? "";
      const colon = h.indexOf(":");
      if (colon <= 0) throw new Error(`bad -H ${JSON.stringify(h)} in: ${line}`);
      headers.push([h.slice(0, colon).trim().toLowerCase(), h.slice(colon + 1).trim()]);
    } else if (w === "-d") data = words[++i];
    else if (w.startsWith("-")) throw new Error(`grpcurl flag ${w} is not emulated: ${line}`);
    else positional.push(w);
  }
  const [address, verb, symbol, ...extra] = positional;
  if (!address || !verb || extra.length > 0) throw new Error(`cannot read address and verb of: ${line}`);
  if (verb === "list" || verb === "describe") {
    return { text: line, plaintext, headers, data, address, verb: { kind: verb, ...(symbol ? { symbol } : {}) } };
  }
  if (symbol) throw new Error(`unexpected argument after the method in: ${line}`);
  const m = /^([\w.]+)[/.](\w+)$/.exec(verb);
  if (!m) throw new Error(`cannot read the method of: ${line}`);
  return { text: line, plaintext, headers, data, address, verb: { kind: "invoke", service: m[1] as string, method: m[2] as string } };
}

/** Options for running commands. */
export interface RunOptions {
  /** Replaces the documented address (e.g. `localhost:4000`) with the test server's. */
  readonly address: string;
  /** Channel credentials used when the command does not say -plaintext. */
  readonly tlsCredentials?: ChannelCredentials;
  /** For a server stream: stop reading (and cancel) once a message satisfies this. Default: after the first message. */
  readonly streamUntil?: (message: Record<string, unknown>) => boolean;
}

/** Runs one parsed command against a server, through reflection only. */
export async function runGrpcurl(command: GrpcurlCommand, options: RunOptions): Promise<GrpcurlResult> {
  const creds = command.plaintext ? ChannelCredentials.createInsecure() : options.tlsCredentials;
  if (!creds) throw new Error(`no TLS credentials for: ${command.text}`);
  const reflection = new GrpcReflection(options.address, creds, {}, "v1");
  try {
    const { verb } = command;
    if (verb.kind === "list") {
      const names = verb.symbol
        ? (await reflection.listMethods(verb.symbol)).map((m) => `${verb.symbol}.${m.name}`)
        : await reflection.listServices();
      return { kind: "list", names };
    }
    if (verb.kind === "describe") {
      if (!verb.symbol) return { kind: "describe", symbol: "", files: [] };
      const root = (await reflection.getDescriptorBySymbol(verb.symbol)).getProtobufJsRoot();
      if (!root.lookup(verb.symbol)) throw new Error(`${verb.symbol} not found in the reflected descriptors`);
      return { kind: "describe", symbol: verb.symbol, files: Object.keys(root.nested ?? {}) };
    }
    return { kind: "invoke", responses: await invoke(reflection, command, verb as InvokeVerb, creds, options) };
  } finally {
    closeReflection(reflection);
  }
}

/** grpc-js-reflection-client has no close(); its channel would otherwise linger. */
export function closeReflection(reflection: GrpcReflection): void {
  (reflection as unknown as { client?: Client }).client?.close();
}

async function invoke(
  reflection: GrpcReflection,
  command: GrpcurlCommand,
  verb: InvokeVerb,
  creds: ChannelCredentials,
  options: RunOptions,
): Promise<Record<string, unknown>[]> {
  const descriptor = await reflection.getDescriptorBySymbol(verb.service);
  const root = descriptor.getProtobufJsRoot();
  const service = root.lookupService(verb.service);
  const method = service.methods[verb.method];
  if (!method) throw new Error(`${verb.service} has no method ${verb.method}`);
  method.resolve();
  const requestType = method.resolvedRequestType ?? root.lookupType(method.requestType);
  const request = toRequest(requestType, command.data === undefined ? {} : (JSON.parse(command.data) as unknown), "");

  const grpcObject = descriptor.getPackageObject({ keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  let ctor: unknown = grpcObject;
  for (const part of verb.service.split(".")) ctor = (ctor as Record<string, unknown>)[part];
  const ClientCtor = ctor as new (address: string, creds: ChannelCredentials) => Client & Record<string, Function>;
  const client = new ClientCtor(options.address, creds);
  const metadata = new Metadata();
  for (const [k, v] of command.headers) metadata.add(k, v);
  try {
    const fn = client[verb.method] as Function;
    if (method.responseStream) {
      return await new Promise((resolve, reject) => {
        const got: Record<string, unknown>[] = [];
        const stream = fn.call(client, request, metadata) as NodeJS.EventEmitter & { cancel(): void };
        const until = options.streamUntil ?? (() => true);
        stream.on("data", (m: Record<string, unknown>) => {
          got.push(m);
          if (until(m)) {
            stream.cancel();
            resolve(got);
          }
        });
        stream.on("error", (err: ServiceError) => (err.code === 1 ? resolve(got) : reject(err)));
        stream.on("end", () => resolve(got));
      });
    }
    const response = await new Promise<Record<string, unknown>>((resolve, reject) =>
      fn.call(client, request, metadata, (err: ServiceError | null, res: Record<string, unknown>) => (err ? reject(err) : resolve(res))),
    );
    return [response];
  } finally {
    client.close();
  }
}

/**
 * Checks request JSON against the reflected type like grpcurl's jsonpb does
 * (field names or their JSON names; anything else fails) and returns it keyed
 * by proto field names, as the keepCase client expects.
 */
function toRequest(type: Type, json: unknown, path: string): Record<string, unknown> {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(`${path || type.name}: expected a JSON object`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fieldsArray.find((f) => f.name === key || f.options?.json_name === key || camel(f.name) === key);
    if (!field) throw new Error(`message type ${type.fullName.slice(1)} has no known field named ${key}`);
    field.resolve();
    const nested = field.resolvedType && "fieldsArray" in field.resolvedType ? (field.resolvedType as Type) : undefined;
    if (field.map) {
      // The client's descriptor round trip (protobufjs -> proto-loader) turns a map into its
      // wire form, a repeated key/value entry message: send it so.
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`${path}${field.name}: expected a JSON object`);
      out[field.name] = Object.entries(value).map(([key, v]) => ({ key, value: v }));
    } else if (nested && !field.repeated) {
      out[field.name] = toRequest(nested, value, `${path}${field.name}.`);
    } else {
      out[field.name] = value;
    }
  }
  return out;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
