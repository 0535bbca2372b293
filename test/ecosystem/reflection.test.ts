import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { ChannelCredentials } from "@grpc/grpc-js";
import { GrpcReflection } from "grpc-js-reflection-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeReflection } from "./grpcurl.js";
import { startStack } from "./stack.js";

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

  it("lists the registry service and grpc.health.v1.Health", async () => {
    const services = await reflection.listServices();
    expect(services).toEqual(expect.arrayContaining(["registry.v1.RegistryService", "grpc.health.v1.Health"]));
  });

  it("lists every RegistryService method with its request and response types", async () => {
    const methods = await reflection.listMethods("registry.v1.RegistryService");
    expect(methods.map((m) => m.name)).toEqual(["Register", "GetByType", "GetInstance", "Unregister", "ListServices", "WatchInstances"]);
    const watch = methods.find((m) => m.name === "WatchInstances")?.definition;
    expect(watch).toMatchObject({ requestStream: false, responseStream: true });
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
