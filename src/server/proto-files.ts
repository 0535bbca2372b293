import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { repairFileDescriptors } from "./descriptor-repair.js";

/**
 * The repository's `proto/` folder, found from this file's location (not the
 * working directory) so it works from `src/` under tsx and from `dist/src/`.
 */
function protoRoot(): string {
  for (const up of ["../../proto/", "../../../proto/"]) {
    const candidate = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(`${candidate}registry/v1/registry.proto`)) return candidate;
  }
  throw new Error("cannot find the proto/ folder next to the service-registry sources");
}

/**
 * A proto-loader definition of everything the server exposes, for server
 * reflection: the registry contract and grpc.health.v1, with descriptors
 * repaired to protoc's shape (see `repairFileDescriptors`).
 */
export function reflectionPackageDefinition(): protoLoader.PackageDefinition {
  const definition = protoLoader.loadSync(["registry/v1/registry.proto", healthProtoPath], {
    includeDirs: [protoRoot()],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const repaired = new Map<readonly Buffer[], Buffer[]>();
  for (const entry of Object.values(definition) as { fileDescriptorProtos?: unknown }[]) {
    const files = entry.fileDescriptorProtos;
    if (!Array.isArray(files)) continue;
    let fixed = repaired.get(files);
    if (!fixed) repaired.set(files, (fixed = repairFileDescriptors(files as Buffer[])));
    entry.fileDescriptorProtos = fixed;
  }
  return definition;
}
