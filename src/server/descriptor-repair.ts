import { fromBinary, isFieldSet, toBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";

/**
 * Makes the file descriptors proto-loader produces look like protoc's, so
 * that strict reflection clients accept them. protobufjs, when it writes
 * descriptors, names a map's entry message `Metadata` instead of
 * `MetadataEntry` (grpcurl and every protobuf-go tool then refuse the whole
 * file: "invalid map: incorrect implicit map entry name"), writes type
 * references relative to their scope, declares no imports, and drops
 * `proto3_optional` (so `optional string host` reads as a oneof named
 * `_host`). This rewrites the serialized descriptors once, at start-up.
 *
 * @example
 * entry.fileDescriptorProtos = repairFileDescriptors(entry.fileDescriptorProtos);
 */
export function repairFileDescriptors(serialized: readonly Uint8Array[]): Buffer[] {
  const files = serialized.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  const known = new Map<string, string>();
  for (const file of files) collectNames(file, known);
  for (const file of files) {
    const pkg = file.package ? `.${file.package}` : "";
    const used = new Set<string>();
    for (const message of file.messageType) repairMessage(message, `${pkg}.${message.name}`, known, used);
    for (const service of file.service) {
      for (const method of service.method) {
        method.inputType = resolve(method.inputType, `${pkg}.${service.name}`, known);
        method.outputType = resolve(method.outputType, `${pkg}.${service.name}`, known);
        used.add(method.inputType).add(method.outputType);
      }
    }
    // protobufjs writes no imports; strict clients refuse a reference to a file not imported.
    const imports = new Set(file.dependency);
    for (const name of used) {
      const home = known.get(name);
      if (home !== undefined && home !== file.name) imports.add(home);
    }
    file.dependency = [...imports].sort();
  }
  return files.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
}

/** Fully qualified names (leading dot) of every message and enum in `file`, mapped to the file's name. */
function collectNames(file: FileDescriptorProto, into: Map<string, string>): void {
  const pkg = file.package ? `.${file.package}` : "";
  for (const e of file.enumType) into.set(`${pkg}.${e.name}`, file.name);
  const visit = (message: DescriptorProto, scope: string): void => {
    const name = `${scope}.${message.name}`;
    into.set(name, file.name);
    for (const e of message.enumType) into.set(`${name}.${e.name}`, file.name);
    for (const nested of message.nestedType) visit(nested, name);
  };
  for (const message of file.messageType) visit(message, pkg);
}

function repairMessage(message: DescriptorProto, fullName: string, known: Map<string, string>, used: Set<string>): void {
  for (const field of message.field) {
    if (field.typeName !== "") field.typeName = resolve(field.typeName, fullName, known);
    if (field.typeName !== "") used.add(field.typeName);
    const entry =
      field.type === FieldDescriptorProto_Type.MESSAGE
        ? message.nestedType.find((n) => `${fullName}.${n.name}` === field.typeName && n.options?.mapEntry)
        : undefined;
    if (entry) {
      entry.name = mapEntryName(field.name);
      field.typeName = `${fullName}.${entry.name}`;
    }
    const inOneof = isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex);
    if (inOneof && !field.proto3Optional && isSyntheticOneof(message, field.oneofIndex, field.name)) {
      field.proto3Optional = true;
    }
  }
  for (const nested of message.nestedType) repairMessage(nested, `${fullName}.${nested.name}`, known, used);
}

/** Protobuf scoping: the innermost enclosing scope that defines the name wins. */
function resolve(name: string, scope: string, known: Map<string, string>): string {
  if (name === "" || name.startsWith(".")) return name;
  for (let s = scope; ; s = s.slice(0, s.lastIndexOf("."))) {
    const candidate = `${s}.${name}`;
    if (known.has(candidate)) return candidate;
    if (s === "") return name; // unknown: leave it for the client to report
  }
}

/** protoc names the oneof of `optional T x` `_x` and gives it that single member. */
function isSyntheticOneof(message: DescriptorProto, index: number, fieldName: string): boolean {
  const members = message.field.filter((f) => isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex) && f.oneofIndex === index);
  return members.length === 1 && message.oneofDecl[index]?.name === `_${fieldName}`;
}

/** `metadata` -> `MetadataEntry`, `foo_bar` -> `FooBarEntry` (protoc's rule). */
function mapEntryName(field: string): string {
  return `${field.replace(/(?:^|_)(.)/g, (_, c: string) => c.toUpperCase())}Entry`;
}
