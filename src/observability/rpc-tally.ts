import { Counter, type Registry } from "prom-client";
import { TalliedHistogram, type HistogramSeries } from "./tallied-histogram.js";

/** Labels of one gRPC method, as go-grpc-prometheus names them (so its dashboards work). */
export type RpcLabels = {
  readonly grpc_type: "unary" | "client_stream" | "server_stream" | "bidi_stream";
  readonly grpc_service: string;
  readonly grpc_method: string;
};

/** The calls of one status code of one method: how many, and how long they took. */
interface EndedCalls {
  readonly labels: RpcLabels & { readonly grpc_code: string };
  count: number;
  readonly seconds: HistogramSeries;
}

/**
 * One gRPC method's calls, counted in plain numbers: a caller gets it once
 * per method and then counts a call without hashing a label set.
 */
export class RpcMethodCalls {
  started = 0;
  /** By status code name. */
  private readonly ended = new Map<string, EndedCalls>();

  constructor(
    readonly labels: RpcLabels,
    private readonly newEnded: (labels: RpcLabels & { readonly grpc_code: string }) => EndedCalls,
  ) {}

  /** A call of this method started. */
  onStarted(): void {
    this.started++;
  }

  /** A call of this method ended with status `code` (go-grpc-prometheus spelling: "OK", "NotFound") after `seconds`. */
  onHandled(code: string, seconds: number): void {
    let ended = this.ended.get(code);
    if (ended === undefined) {
      ended = this.newEnded({ ...this.labels, grpc_code: code });
      this.ended.set(code, ended);
    }
    ended.count++;
    ended.seconds.observe(seconds);
  }
}

/**
 * The gRPC server metrics of go-grpc-prometheus (`grpc_server_started_total`,
 * `grpc_server_handled_total`, `grpc_server_handling_seconds`), counted per
 * method in plain numbers on the call path and handed to prom-client only
 * when scraped: a call costs a few additions instead of three label hashes.
 */
export class RpcTally {
  private readonly methods = new Map<string, RpcMethodCalls>();
  /** Every (method, code) seen, in the order first seen: the order of their series. */
  private readonly ended: EndedCalls[] = [];

  private readonly seconds: TalliedHistogram;

  constructor(
    registers: readonly Registry[],
    buckets: readonly number[],
  ) {
    const methods = this.methods;
    const ended = this.ended;
    const rpc = ["grpc_type", "grpc_service", "grpc_method"] as const;
    new Counter({
      name: "grpc_server_started_total",
      help: "RPCs started on the server.",
      labelNames: rpc,
      registers: [...registers],
      collect() {
        this.reset();
        for (const m of methods.values()) if (m.started > 0) this.inc({ ...m.labels }, m.started);
      },
    });
    new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, by status code.",
      labelNames: [...rpc, "grpc_code"],
      registers: [...registers],
      collect() {
        this.reset();
        for (const e of ended) this.inc({ ...e.labels }, e.count);
      },
    });
    this.seconds = new TalliedHistogram({
      name: "grpc_server_handling_seconds",
      help: "Time from an RPC's start to its status (for streams: the stream's lifetime).",
      buckets,
      registers,
    });
  }

  /** The counters of the method with `labels`, created on first use; keep it for the method's later calls. */
  method(labels: RpcLabels): RpcMethodCalls {
    const key = `${labels.grpc_type}/${labels.grpc_service}/${labels.grpc_method}`;
    let calls = this.methods.get(key);
    if (!calls) {
      calls = new RpcMethodCalls({ ...labels }, (withCode) => {
        const e: EndedCalls = { labels: withCode, count: 0, seconds: this.seconds.series(withCode) };
        this.ended.push(e);
        return e;
      });
      this.methods.set(key, calls);
    }
    return calls;
  }
}
