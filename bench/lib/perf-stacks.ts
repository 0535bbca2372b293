import { execFileSync } from "node:child_process";

/** One Linux `perf` sample: its frames, leaf first; the kernel's marked "[k] ". */
export type Stack = string[];

/** Where a sample's CPU went, in the order the investigation tools print them. */
export const BUCKETS = ["our code", "kernel", "GC", "grpc-js, node:http2, V8, libuv"] as const;

// The generated codec is grpc-js's (de)serializer: it runs for the ceilings too.
const GRPC = /@grpc\/grpc-js|node:internal\/http2|\/gen\//;
const GC = /Scaveng|MarkCompact|ConcurrentMarking|Sweeper|Heap::|Evacuat|MinorMC|GCTracer/;

/** The samples of a `perf record -g` file, read with `perf script`. */
export function readStacks(file: string): Stack[] {
  const text = execFileSync("perf", ["script", "-i", file, "-F", "ip,sym"], { maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "ignore"] }).toString();
  return text
    .split("\n\n")
    .map((block) =>
      block
        .split("\n")
        // Kernel addresses are the top half of the address space.
        .map((line) => line.trim().replace(/^([0-9a-f]+) /, (_, ip: string) => (ip.length === 16 && ip.startsWith("ffff") ? "[k] " : "")))
        .filter(Boolean),
    )
    .filter((s) => s.length > 0);
}

/**
 * A sample's share: our code when the frame nearest the leaf that is either
 * ours or grpc-js's (or the codec's) is ours: grpc-js calls our handler, and
 * our handler calls grpc-js's callback, whose path the ceilings have too.
 * Then the kernel, V8's GC, and the rest. TurboFan inlines across packages,
 * so the split is approximate.
 */
export function bucket(stack: Stack, isOurs: (frame: string) => boolean): (typeof BUCKETS)[number] {
  const nearest = stack.find((f) => isOurs(f) || GRPC.test(f));
  if (nearest && isOurs(nearest)) return "our code";
  const leaf = stack[0] ?? "";
  if (leaf.startsWith("[k] ")) return "kernel";
  if (GC.test(leaf)) return "GC";
  return "grpc-js, node:http2, V8, libuv";
}
