import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { RpcTally, type RpcLabels } from "../../src/observability/rpc-tally.js";
import { TalliedHistogram } from "../../src/observability/tallied-histogram.js";

const BUCKETS = [0.001, 0.01, 0.1, 1];
const register: RpcLabels = { grpc_type: "unary", grpc_service: "registry.v1.RegistryService", grpc_method: "Register" };
const watch: RpcLabels = { grpc_type: "server_stream", grpc_service: "registry.v1.RegistryService", grpc_method: "WatchInstances" };
/** Calls as (method, code, seconds), methods and codes interleaved, values on and beyond the bounds. */
const CALLS: [RpcLabels, string, number][] = [
  [register, "OK", 0.0004],
  [watch, "Canceled", 12],
  [register, "NotFound", 0.01],
  [register, "OK", 0.1],
  [register, "OK", 1.5],
  [watch, "OK", 0.001],
  [register, "NotFound", 0.2],
];

// What dashboards and alerts read must not change with how it is counted:
// the tallies render byte for byte what prom-client's own metrics render.
describe("metrics counted in plain numbers", () => {
  it("render the RPC metrics exactly as prom-client's Counter and Histogram fed the same calls", async () => {
    const native = new Registry();
    const names = ["grpc_type", "grpc_service", "grpc_method"] as const;
    const started = new Counter({ name: "grpc_server_started_total", help: "RPCs started on the server.", labelNames: names, registers: [native] });
    const handled = new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, by status code.",
      labelNames: [...names, "grpc_code"],
      registers: [native],
    });
    const seconds = new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Time from an RPC's start to its status (for streams: the stream's lifetime).",
      labelNames: [...names, "grpc_code"],
      buckets: BUCKETS,
      registers: [native],
    });
    const tallied = new Registry();
    const tally = new RpcTally([tallied], BUCKETS);
    expect(await tallied.metrics()).toBe(await native.metrics());
    for (const [labels, code, s] of CALLS) {
      started.inc({ ...labels });
      handled.inc({ ...labels, grpc_code: code });
      seconds.observe({ ...labels, grpc_code: code }, s);
      const calls = tally.method(labels);
      calls.onStarted();
      calls.onHandled(code, s);
    }
    expect(await tallied.metrics()).toBe(await native.metrics());
    // Counting goes on after a scrape, as prom-client's does.
    tally.method(register).onStarted();
    tally.method(register).onHandled("OK", 0.005);
    started.inc({ ...register });
    handled.inc({ ...register, grpc_code: "OK" });
    seconds.observe({ ...register, grpc_code: "OK" }, 0.005);
    expect(await tallied.metrics()).toBe(await native.metrics());
    expect(await tallied.getMetricsAsJSON()).toEqual(await native.getMetricsAsJSON());
  });

  it("render a histogram without labels' series as prom-client does: none until observed", async () => {
    const native = new Registry();
    const h = new Histogram({ name: "x_seconds", help: "x.", labelNames: ["op"], buckets: BUCKETS, registers: [native] });
    const tallied = new Registry();
    const t = new TalliedHistogram({ name: "x_seconds", help: "x.", buckets: BUCKETS, registers: [tallied] });
    expect(await tallied.metrics()).toBe(await native.metrics());
    h.observe({ op: "register" }, 0.05);
    t.series({ op: "register" }).observe(0.05);
    expect(await tallied.metrics()).toBe(await native.metrics());
  });
});
