import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { clearField, clone, create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { protoCamelCase } from "@bufbuild/protobuf/reflect";
import {
  FieldDescriptorProtoSchema,
  file_google_protobuf_timestamp,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  TimestampSchema,
  type DescriptorProto,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { ChannelCredentials } from "@grpc/grpc-js";
import { GrpcReflection } from "grpc-js-reflection-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeReflection } from "./grpcurl.js";
import { startStack } from "../support/stack.js";

/**
 * Server reflection checked with a reflection client we did not write
 * (npm grpc-js-reflection-client), over both protocol versions grpcurl
 * knows: v1, and v1alpha, which older tools still ask for.
 */
describe.each(["v1", "v1alpha"])("server reflection (%s) seen by grpc-js-reflection-client", (version) => {
  let server: Awaited<ReturnType<typeof startStack>>;
  let reflection: GrpcReflection;
  beforeAll(async () => {
    server = await startStack();
    reflection = new GrpcReflection(server.address, ChannelCredentials.createInsecure(), {}, version);
  });
  afterAll(async () => {
    closeReflection(reflection);
    await server.close();
  });

  it("lists the registry service, grpc.health.v1.Health and server reflection itself", async () => {
    const services = await reflection.listServices();
    expect(services).toEqual(
      expect.arrayContaining([
        "registry.v1.RegistryService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]),
    );
  });

  it("answers file_by_filename for the paths clients import the files by", async () => {
    const raw = reflection as unknown as RawReflection;
    for (const [name, pkg] of Object.entries(SERVED_FILES)) {
      const [file] = decode(await raw.getProtoDescriptorByFileName(name));
      expect({ name: file?.name, package: file?.package }).toEqual({ name, package: pkg });
    }
  });

  it("no longer serves proto-loader's made-up file names", async () => {
    const raw = reflection as unknown as RawReflection;
    for (const name of ["registry_v1.proto", "google_protobuf.proto", "grpc_health_v1.proto"]) {
      await expect(raw.getProtoDescriptorByFileName(name), name).rejects.toThrow(/not found/i);
    }
  });

  it("answers file_containing_symbol with the defining file's real name and real imports", async () => {
    const raw = reflection as unknown as RawReflection;
    const defining = async (symbol: string) => decode(await raw.getProtoDescriptorBySymbol(symbol))[0];
    expect(await defining("registry.v1.RegistryService")).toMatchObject({
      name: "registry/v1/registry.proto",
      dependency: ["google/protobuf/timestamp.proto"],
    });
    expect((await defining("registry.v1.Instance"))?.name).toBe("registry/v1/registry.proto");
    expect((await defining("google.protobuf.Timestamp"))?.name).toBe("google/protobuf/timestamp.proto");
    expect((await defining("grpc.health.v1.Health"))?.name).toBe("grpc/health/v1/health.proto");
    expect((await defining("grpc.reflection.v1.ServerReflection"))?.name).toBe("grpc/reflection/v1/reflection.proto");
  });

  it("serves every file a listed service needs, each import resolvable by the name the importer gives", async () => {
    // rawFiles fetches each dependency by name and fails if the server does not answer with that file.
    const names = new Set<string>();
    for (const service of await reflection.listServices()) {
      for (const file of await rawFiles(reflection, service)) names.add(file.name);
    }
    expect([...names].sort()).toEqual(Object.keys(SERVED_FILES).sort());
  });

  it("lets a client that brings its own well-known types resolve registry.proto's import", async () => {
    const raw = reflection as unknown as RawReflection;
    const [served] = decode(await raw.getProtoDescriptorByFileName("registry/v1/registry.proto"));
    // Only the registry file from the server; google/protobuf/timestamp.proto from the client's own runtime.
    const registry = createFileRegistry(served as FileDescriptorProto, (name) =>
      name === file_google_protobuf_timestamp.proto.name ? file_google_protobuf_timestamp : undefined,
    );
    expect(registry.getMessage("registry.v1.Instance")?.field.registeredAt?.message).toBe(TimestampSchema);
  });

  it("serves the descriptors `buf build` makes from proto/, default json_names left out as protoc's CopyTo does", async () => {
    const raw = reflection as unknown as RawReflection;
    const built = bufBuild();
    expect(built.map((f) => f.name)).toEqual(["google/protobuf/timestamp.proto", "registry/v1/registry.proto"]);
    for (const file of built) {
      const [served] = decode(await raw.getProtoDescriptorByFileName(file.name));
      expect(served).toEqual(withoutDefaultJsonNames(file));
    }
  });

  it("serves files protobufjs decodes into the expected services and messages", async () => {
    const registry = (await reflection.getDescriptorByFileName("registry/v1/registry.proto")).getProtobufJsRoot();
    expect(Object.keys(registry.lookupService("registry.v1.RegistryService").methods)).toEqual([
      "Register",
      "GetByType",
      "GetInstance",
      "Unregister",
      "ListServices",
      "WatchInstances",
      "Drain",
      "Heartbeat",
      "KeepAlive",
    ]);
    const instance = registry.lookupType("registry.v1.Instance");
    expect(instance.fields.registered_at?.resolve().resolvedType?.fullName).toBe(".google.protobuf.Timestamp");
    const health = (await reflection.getDescriptorByFileName("grpc/health/v1/health.proto")).getProtobufJsRoot();
    expect(Object.keys(health.lookupService("grpc.health.v1.Health").methods)).toEqual(expect.arrayContaining(["Check", "Watch"]));
    expect(health.lookupType("grpc.health.v1.HealthCheckRequest").fields.service?.type).toBe("string");
  });

  it("lists every RegistryService method with its request and response types", async () => {
    const methods = await reflection.listMethods("registry.v1.RegistryService");
    expect(methods.map((m) => m.name)).toEqual(["Register", "GetByType", "GetInstance", "Unregister", "ListServices", "WatchInstances", "Drain", "Heartbeat", "KeepAlive"]);
    const watch = methods.find((m) => m.name === "WatchInstances")?.definition;
    expect(watch).toMatchObject({ requestStream: false, responseStream: true });
    const keepAlive = methods.find((m) => m.name === "KeepAlive")?.definition;
    expect(keepAlive).toMatchObject({ requestStream: true, responseStream: true });
  });

  it("describes the contract with full descriptors: messages, enums and imported well-known types", async () => {
    const root = (await reflection.getDescriptorBySymbol("registry.v1.RegistryService")).getProtobufJsRoot();
    const service = root.lookupService("registry.v1.RegistryService");
    expect(service.methods.Register?.requestType).toMatch(/RegisterRequest$/);
    const instance = root.lookupType("registry.v1.Instance");
    expect(instance.fieldsArray.map((f) => f.name)).toEqual(
      expect.arrayContaining(["id", "service_type", "host", "port", "metadata", "health", "registered_at", "revision"]),
    );
    expect(instance.fields.registered_at?.resolve().resolvedType?.fullName).toBe(".google.protobuf.Timestamp");
    expect(root.lookupEnum("registry.v1.EventType").values).toMatchObject({ EVENT_TYPE_SYNCED: 5, EVENT_TYPE_RESET: 7 });
  });

  it("describes RegisterRequest as protoc would: proto3 `optional` fields, a map entry named MetadataEntry", async () => {
    // The client's protobufjs does not carry proto3_optional into its Root, so read the raw descriptors.
    const files = await rawFiles(reflection, "registry.v1.RegistryService");
    const request = files.flatMap((f) => f.messageType).find((m) => m.name === "RegisterRequest");
    expect(request?.field.filter((f) => f.proto3Optional).map((f) => f.name)).toEqual(["host", "health_check"]);
    expect(request?.nestedType.map((n) => [n.name, n.options?.mapEntry])).toEqual([["MetadataEntry", true]]);
    expect(request?.field.find((f) => f.name === "metadata")?.typeName).toBe(".registry.v1.RegisterRequest.MetadataEntry");
  });

  it("serves descriptors a strict protobuf runtime accepts, as protobuf-go (grpcurl) requires", async () => {
    // Imports declared, references fully qualified, map entries named <Field>Entry.
    const files = [
      ...(await rawFiles(reflection, "registry.v1.RegistryService")),
      ...(await rawFiles(reflection, "grpc.health.v1.Health")),
    ];
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: uniqueByName(files) }));
    const request = registry.getMessage("registry.v1.RegisterRequest");
    expect(request?.field.metadata?.fieldKind).toBe("map");
    expect(request?.field.host?.proto.proto3Optional).toBe(true);
    expect(registry.getMessage("registry.v1.Instance")?.field.registeredAt?.message?.typeName).toBe("google.protobuf.Timestamp");
    expect(registry.getService("registry.v1.RegistryService")?.method.watchInstances?.methodKind).toBe("server_streaming");
    expect(registry.getService("grpc.health.v1.Health")?.method.watch?.methodKind).toBe("server_streaming");
  });

  it("describes grpc.health.v1.Health with Check and Watch", async () => {
    const methods = await reflection.listMethods("grpc.health.v1.Health");
    expect(methods.map((m) => m.name)).toEqual(expect.arrayContaining(["Check", "Watch"]));
    const root = (await reflection.getDescriptorBySymbol("grpc.health.v1.Health")).getProtobufJsRoot();
    expect(Object.keys(root.lookupEnum("grpc.health.v1.HealthCheckResponse.ServingStatus").values)).toEqual(
      expect.arrayContaining(["SERVING", "NOT_SERVING"]),
    );
  });

  it("answers an unknown symbol with an error instead of hanging", async () => {
    await expect(reflection.getDescriptorBySymbol("registry.v1.NoSuchThing")).rejects.toThrow();
  });
});

/** Every file the server describes, by the path clients import it by, with its package. */
const SERVED_FILES: Record<string, string> = {
  "registry/v1/registry.proto": "registry.v1",
  "google/protobuf/timestamp.proto": "google.protobuf",
  "grpc/health/v1/health.proto": "grpc.health.v1",
  "grpc/reflection/v1/reflection.proto": "grpc.reflection.v1",
  "grpc/reflection/v1alpha/reflection.proto": "grpc.reflection.v1alpha",
};

function decode(files: Uint8Array[]): FileDescriptorProto[] {
  return files.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

let built: FileDescriptorProto[] | undefined;

/** What `buf build` makes of proto/ now, imports included (built once per run). */
function bufBuild(): FileDescriptorProto[] {
  if (built) return built;
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const temp = mkdtempSync(join(tmpdir(), "reflection-buf-"));
  try {
    const out = join(temp, "registry.binpb");
    execFileSync(join(root, "node_modules", ".bin", "buf"), ["build", "--as-file-descriptor-set", "-o", out], {
      cwd: root,
      stdio: "pipe",
    });
    built = fromBinary(FileDescriptorSetSchema, readFileSync(out)).file;
    return built;
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

/** A copy of `file` with each field's json_name cleared where it is protoc's default for the field's name. */
function withoutDefaultJsonNames(file: FileDescriptorProto): FileDescriptorProto {
  const copy = clone(FileDescriptorProtoSchema, file);
  const visit = (message: DescriptorProto): void => {
    for (const field of message.field) {
      expect(field.jsonName, `buf sets json_name on ${field.name}`).not.toBe("");
      if (field.jsonName === protoCamelCase(field.name)) clearField(field, FieldDescriptorProtoSchema.field.jsonName);
    }
    message.nestedType.forEach(visit);
  };
  copy.messageType.forEach(visit);
  return copy;
}

/** The reflection client's raw calls: what grpcurl asks for (file containing a symbol, then each import by name). */
interface RawReflection {
  getProtoDescriptorBySymbol(symbol: string): Promise<Uint8Array[]>;
  getProtoDescriptorByFileName(name: string): Promise<Uint8Array[]>;
}

/** The file defining `symbol` and, transitively, every file it imports, fetched as grpcurl fetches them. */
async function rawFiles(reflection: GrpcReflection, symbol: string): Promise<FileDescriptorProto[]> {
  const raw = reflection as unknown as RawReflection;
  const files = new Map<string, FileDescriptorProto>();
  const pending = (await raw.getProtoDescriptorBySymbol(symbol)).map((b) => fromBinary(FileDescriptorProtoSchema, b));
  while (pending.length > 0) {
    const file = pending.shift() as FileDescriptorProto;
    if (files.has(file.name)) continue;
    files.set(file.name, file);
    for (const dep of file.dependency) {
      if (files.has(dep)) continue;
      const got = (await raw.getProtoDescriptorByFileName(dep)).map((b) => fromBinary(FileDescriptorProtoSchema, b));
      const match = got.find((f) => f.name === dep);
      if (!match) throw new Error(`file_by_filename ${dep} did not return ${dep}`);
      pending.push(...got);
    }
  }
  return [...files.values()];
}

/** Each file once, imports before importers (as a FileDescriptorSet is laid out). */
function uniqueByName(files: FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const ordered: FileDescriptorProto[] = [];
  const visit = (file: FileDescriptorProto): void => {
    if (ordered.includes(file)) return;
    for (const dep of file.dependency) {
      const d = byName.get(dep);
      if (d) visit(d);
    }
    ordered.push(file);
  };
  byName.forEach(visit);
  return ordered;
}
