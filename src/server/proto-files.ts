import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { clearField, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { protoCamelCase } from "@bufbuild/protobuf/reflect";
import {
  FieldDescriptorProtoSchema,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type DescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import * as protoLoader from "@grpc/proto-loader";

/** The descriptor set `buf build` makes from proto/: the registry contract and the well-known types it imports. */
const REGISTRY_DESCRIPTORS = "registry.binpb";
/** The descriptor set `buf build` makes from grpc-health-check's health.proto. */
const HEALTH_DESCRIPTORS = "health.binpb";
/** The descriptor set `buf build` makes from the reflection protos @grpc/reflection implements (v1 and v1alpha). */
const REFLECTION_DESCRIPTORS = "reflection.binpb";
/**
 * The health proto's import path everywhere else (grpc-proto, grpc-go,
 * grpc-java). grpc-health-check ships the file as `health/v1/health.proto`,
 * so that is the name buf gives it.
 */
const HEALTH_PROTO_NAME = "grpc/health/v1/health.proto";

/**
 * The repository's `gen/` folder, found from this file's location (not the
 * working directory) so it works from `src/` under tsx and from `dist/src/`
 * (where `dist/gen/` holds the compiled code but not the descriptor sets).
 */
function genRoot(): string {
  for (const up of ["../../gen/", "../../../gen/"]) {
    const candidate = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(`${candidate}${REGISTRY_DESCRIPTORS}`)) return candidate;
  }
  throw new Error(`cannot find gen/${REGISTRY_DESCRIPTORS} next to the service-registry sources (run npm run generate)`);
}

/**
 * Every file the server describes, as buf built them (imports before
 * importers), under the names clients import them by:
 * `registry/v1/registry.proto`, `google/protobuf/timestamp.proto`,
 * `grpc/health/v1/health.proto`, `grpc/reflection/v1/reflection.proto`,
 * `grpc/reflection/v1alpha/reflection.proto`.
 *
 * One change to buf's output: a field's `json_name` is left out where it is
 * the default one, as protoc's `CopyTo` (what C++, Java and Python servers
 * serve) and protobuf-es's embedded descriptors leave it out. Every client
 * derives the default itself, and protobufjs, given a `json_name`, names the
 * field by it (`serviceType`), so grpc-js-reflection-client's users would
 * no longer find `service_type`.
 */
export function servedFileDescriptors(): FileDescriptorProto[] {
  const root = genRoot();
  const read = (name: string): FileDescriptorProto[] =>
    fromBinary(FileDescriptorSetSchema, readFileSync(`${root}${name}`)).file;
  const health = read(HEALTH_DESCRIPTORS);
  for (const file of health) if (file.package === "grpc.health.v1") file.name = HEALTH_PROTO_NAME;
  const files = new Map<string, FileDescriptorProto>();
  for (const file of [...read(REGISTRY_DESCRIPTORS), ...health, ...read(REFLECTION_DESCRIPTORS)]) {
    if (files.has(file.name)) continue;
    file.extension.forEach(dropDefaultJsonName);
    file.messageType.forEach(dropDefaultJsonNames);
    files.set(file.name, file);
  }
  return [...files.values()];
}

function dropDefaultJsonNames(message: DescriptorProto): void {
  message.field.forEach(dropDefaultJsonName);
  message.extension.forEach(dropDefaultJsonName);
  message.nestedType.forEach(dropDefaultJsonNames);
}

function dropDefaultJsonName(field: FieldDescriptorProto): void {
  if (field.jsonName === protoCamelCase(field.name)) clearField(field, FieldDescriptorProtoSchema.field.jsonName);
}

/**
 * A proto-loader definition of everything the server exposes, for server
 * reflection (`new ReflectionService(reflectionPackageDefinition())`): the
 * registry contract, grpc.health.v1 and server reflection itself (so that
 * `list` names it, as grpcurl users expect). @grpc/reflection serves each
 * entry's `fileDescriptorProtos`; proto-loader would fill them with
 * protobufjs's rewrite of the files (one file per package, named like
 * `registry_v1.proto`, imports dropped), so they are replaced with buf's
 * own descriptors.
 */
export function reflectionPackageDefinition(): protoLoader.PackageDefinition {
  const files = servedFileDescriptors();
  const definition = protoLoader.loadFileDescriptorSetFromBuffer(
    Buffer.from(toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }))),
  );
  const served = files.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
  for (const entry of Object.values(definition) as { fileDescriptorProtos?: unknown }[]) {
    if (Array.isArray(entry.fileDescriptorProtos)) entry.fileDescriptorProtos = served;
  }
  return definition;
}
