import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ServiceRegistry } from "../registry/service-registry.js";
import type { CommitOutcome } from "../registry/commit-outcomes.js";
import type { ServiceSummary } from "../registry/types.js";
import type { ProbeOutcome } from "./instrumented-probe.js";
import { RpcTally, type RpcLabels, type RpcMethodCalls } from "./rpc-tally.js";
import type { ServingState } from "./serving-state.js";
import { TalliedHistogram, type HistogramSeries } from "./tallied-histogram.js";

export type { RpcLabels } from "./rpc-tally.js";

/** What the metrics read at scrape time. */
export interface MetricsSources {
  readonly registry: ServiceRegistry;
  /** Open gRPC watch streams. */
  readonly watchStreams?: () => number;
  /** Open xDS streams. */
  readonly xdsStreams?: () => number;
  readonly serving?: ServingState;
  /**
   * Service types with series of their own in `registry_instances` (those
   * with the most instances); the rest are summed under `service_type="_other"`.
   * Default 100.
   */
  readonly serviceTypeSeries?: number;
}

/** The `service_type` label of the instances of every type beyond `serviceTypeSeries` ("_" starts no type name). */
export const OTHER_SERVICE_TYPES = "_other";

const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const PROBE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The server's Prometheus metrics, in a prom-client Registry of its own (not
 * the global one), so several servers can live in one process.
 *
 * Counters and histograms are fed by the transports and decorators through
 * the `on*` methods; gauges are read from the registry at scrape time. What
 * every call, commit or watch event feeds (RPC counts and latencies, commit
 * latencies, events sent) is counted in plain numbers and handed to
 * prom-client only when scraped, so the hot paths hash no label sets. No
 * label carries a secret or a value a client can multiply: labels are
 * method names, status codes, outcomes, routes and the service types with
 * the most instances (a bounded number), never instance ids, hosts or tokens.
 *
 * @example
 * const metrics = new RegistryMetrics();
 * metrics.observe({ registry, serving, watchStreams: () => grpc.watchStreamCount });
 * res.setHeader("content-type", metrics.contentType);
 * res.end(await metrics.exposition());
 */
export class RegistryMetrics {
  /** The prom-client registry holding every metric of this server. */
  readonly prometheus = new Registry();
  private readonly rpc: RpcTally;
  private readonly httpRequests: Counter<"route" | "method" | "code">;
  private readonly httpSeconds: Histogram<"route" | "method">;
  /** Watch events written, by type, in first-seen order (the order of their series). */
  private readonly eventsSent = new Map<string, number>();
  private readonly probes: Counter<"outcome">;
  private readonly probeSeconds: Histogram<"outcome">;
  private readonly commitSeconds: TalliedHistogram;
  /** Commit latency series by op, then outcome. */
  private readonly commitSeries = new Map<string, Map<string, HistogramSeries>>();
  private readonly quotaRefusals: Counter<"quota">;
  private readonly authFailures: Counter<"kind">;
  /** xDS responses sent, by resource type (counted in plain numbers, handed over on scrape). */
  private readonly xdsResponses = new Map<string, number>();
  private readonly xdsNacks: Counter<"type">;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.prometheus];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.prometheus });
    this.rpc = new RpcTally(registers, RPC_BUCKETS);
    this.httpRequests = new Counter({
      name: "registry_http_requests_total",
      help: "HTTP requests on HTTP_PORT, by route template, method and status code.",
      labelNames: ["route", "method", "code"],
      registers,
    });
    this.httpSeconds = new Histogram({
      name: "registry_http_request_duration_seconds",
      help: "HTTP request latency on HTTP_PORT, by route template.",
      labelNames: ["route", "method"],
      buckets: RPC_BUCKETS,
      registers,
    });
    const eventsSent = this.eventsSent;
    new Counter({
      name: "registry_watch_events_sent_total",
      help: "Watch events written to gRPC watch streams, by type.",
      labelNames: ["type"],
      registers,
      collect() {
        this.reset();
        for (const [type, n] of eventsSent) this.inc({ type }, n);
      },
    });
    const xdsResponses = this.xdsResponses;
    new Counter({
      name: "registry_xds_responses_total",
      help: "xDS (ADS) responses sent to clients, by resource type.",
      labelNames: ["type"],
      registers,
      collect() {
        this.reset();
        for (const [type, n] of xdsResponses) this.inc({ type }, n);
      },
    });
    this.xdsNacks = new Counter({
      name: "registry_xds_nacks_total",
      help: "xDS responses a client rejected (NACK), by resource type; the client keeps the version it had (the log line has its error).",
      labelNames: ["type"],
      registers,
    });
    this.quotaRefusals = new Counter({
      name: "registry_quota_refusals_total",
      help: "Requests and connections refused because a quota was reached, by quota (its setting name).",
      labelNames: ["quota"],
      registers,
    });
    this.authFailures = new Counter({
      name: "registry_auth_failures_total",
      help: "Failed authentications (wrong or missing key or token), and those refused by the rate limit unchecked.",
      labelNames: ["kind"],
      registers,
    });
    this.probes = new Counter({
      name: "registry_health_probes_total",
      help: "Health probes finished, by outcome (pass, http_status, timeout, connection, redirect, aborted, denied: target refused by the probe-target policy).",
      labelNames: ["outcome"],
      registers,
    });
    this.probeSeconds = new Histogram({
      name: "registry_health_probe_duration_seconds",
      help: "Health probe duration, by outcome.",
      labelNames: ["outcome"],
      buckets: PROBE_BUCKETS,
      registers,
    });
    this.commitSeconds = new TalliedHistogram({
      name: "registry_store_commit_duration_seconds",
      help: "Store commit latency, by mutation and outcome (ok, rejected: a domain answer, error: the store failed).",
      buckets: COMMIT_BUCKETS,
      registers,
    });
  }

  /** Content type of {@link exposition}. */
  get contentType(): string {
    return this.prometheus.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  exposition(): Promise<string> {
    return this.prometheus.metrics();
  }

  /** Registers the gauges read at scrape time. Call once, when the sources exist. */
  observe(sources: MetricsSources): void {
    const { registry, serving, watchStreams, xdsStreams } = sources;
    const typeSeries = sources.serviceTypeSeries ?? 100;
    const registers = [this.prometheus];
    // Both service gauges read the same counts: one listServices() per
    // revision (the counts change only with one) serves both in a scrape,
    // and the scrapes after it while nothing changes.
    let counted: { readonly epoch: string; readonly revision: number; readonly services: readonly ServiceSummary[] } | undefined;
    const largestFirst = (): readonly ServiceSummary[] => {
      if (counted === undefined || counted.revision !== registry.revision || counted.epoch !== registry.epoch) {
        const { services, revision } = registry.listServices();
        counted = { epoch: registry.epoch, revision, services: services.sort((a, b) => b.totalCount - a.totalCount) };
      }
      return counted.services;
    };
    new Gauge({
      name: "registry_instances",
      help: `Registered instances, by service type and health: the types with the most instances, the rest as service_type="${OTHER_SERVICE_TYPES}".`,
      labelNames: ["service_type", "health"],
      registers,
      collect() {
        this.reset();
        // While the store is lost the counts may be stale and listServices()
        // refuses: report no series rather than fail the whole scrape (the
        // serving-state gauges say why).
        if (!registry.available) return;
        // Types are chosen by whoever holds a key: only the largest get series
        // of their own, so a flood of types cannot flood the scrape.
        const services = largestFirst();
        let otherHealthy = 0;
        let otherTotal = 0;
        services.forEach((s, i) => {
          if (i < typeSeries) {
            this.set({ service_type: s.serviceType, health: "healthy" }, s.healthyCount);
            this.set({ service_type: s.serviceType, health: "unhealthy" }, s.totalCount - s.healthyCount);
          } else {
            otherHealthy += s.healthyCount;
            otherTotal += s.totalCount;
          }
        });
        if (services.length > typeSeries) {
          this.set({ service_type: OTHER_SERVICE_TYPES, health: "healthy" }, otherHealthy);
          this.set({ service_type: OTHER_SERVICE_TYPES, health: "unhealthy" }, otherTotal - otherHealthy);
        }
      },
    });
    new Gauge({
      name: "registry_instances_draining",
      help: "Instances marked draining (left out of GetByType by default), all service types together.",
      registers,
      collect() {
        this.reset();
        if (!registry.available) return;
        this.set(largestFirst().reduce((sum, s) => sum + s.drainingCount, 0));
      },
    });
    // Counted in a plain map as removals happen; handed to prom-client on scrape.
    const removed = new Map<string, number>();
    registry.on("instanceRemoved", (_instance, reason) => removed.set(reason, (removed.get(reason) ?? 0) + 1));
    new Counter({
      name: "registry_instances_removed_total",
      help: "Instance removals this process has applied since it started, by reason (unregistered, health_check_expired, replaced, drain_expired); on a shared store every replica counts every removal.",
      labelNames: ["reason"],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of removed) this.inc({ reason }, n);
      },
    });
    new Gauge({
      name: "registry_service_types",
      help: "Service types with instances: all of them, those with no healthy instance (alert on this one: it covers every type), and those in panic (answering with every instance, expiry paused).",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        if (!registry.available) return;
        const services = largestFirst();
        this.set({ state: "total" }, services.length);
        this.set({ state: "without_healthy" }, services.filter((s) => s.healthyCount === 0).length);
        this.set({ state: "panic" }, services.filter((s) => s.panic).length);
      },
    });
    new Gauge({
      name: "registry_mass_failure",
      help: "1 while this process suspects its own network (most of its probes failed at once, across service types): health states are held, nothing expires, NOT_SERVING.",
      registers,
      collect() {
        this.set(registry.massFailure.suspected ? 1 : 0);
      },
    });
    new Counter({
      name: "registry_mass_failure_entries_total",
      help: "Times this process started suspecting its own network.",
      registers,
      collect() {
        this.reset();
        this.inc(registry.massFailure.entries);
      },
    });
    new Gauge({
      name: "registry_revision",
      help: "Latest applied revision.",
      registers,
      collect() {
        this.set(registry.revision);
      },
    });
    new Gauge({
      name: "registry_watch_streams",
      help: "Open gRPC watch streams.",
      registers,
      collect() {
        this.set(watchStreams?.() ?? 0);
      },
    });
    new Gauge({
      name: "registry_xds_streams",
      help: "Open xDS (ADS) streams.",
      registers,
      collect() {
        this.set(xdsStreams?.() ?? 0);
      },
    });
    new Gauge({
      name: "registry_watchers",
      help: "Watchers in the registry core, by state (live: taking pushes; parked: catching up from history).",
      labelNames: ["state"],
      registers,
      collect() {
        const stats = registry.watchStats();
        this.set({ state: "live" }, stats.watchers - stats.parked);
        this.set({ state: "parked" }, stats.parked);
      },
    });
    new Counter({
      name: "registry_watcher_resets_total",
      help: "Watchers sent RESET (resume point unusable or fallen out of the history window).",
      registers,
      collect() {
        this.reset();
        this.inc(registry.watchStats().resets);
      },
    });
    new Gauge({
      name: "registry_health_probe_lag_seconds",
      help: "How late probes started against their due time, over the last 1024 probes of instances not found unhealthy (quantile 1 = max).",
      labelNames: ["quantile"],
      registers,
      collect() {
        const lag = registry.probeLag();
        this.set({ quantile: "0.5" }, lag.p50 / 1000);
        this.set({ quantile: "0.99" }, lag.p99 / 1000);
        this.set({ quantile: "1" }, lag.max / 1000);
      },
    });
    new Gauge({
      name: "registry_serving",
      help: "1 while SERVING (grpc.health.v1 and /healthz), 0 while not.",
      registers,
      collect() {
        this.set(serving?.serving === false ? 0 : 1);
      },
    });
    new Gauge({
      name: "registry_not_serving",
      help: "1 for each active reason to report NOT_SERVING.",
      labelNames: ["reason"],
      registers,
      collect() {
        this.reset();
        for (const r of serving?.reasons ?? []) this.set({ reason: r.reason }, 1);
      },
    });
  }

  /**
   * The call counters of one gRPC method (started, handled by code, and
   * latency): get them once per method and count each call on them.
   */
  rpcMethod(labels: RpcLabels): RpcMethodCalls {
    return this.rpc.method(labels);
  }

  /** An HTTP request ended; `route` is the matched template (e.g. `/service/:id`), never the raw path. */
  onHttpRequest(route: string, method: string, code: number, seconds: number): void {
    this.httpRequests.inc({ route, method, code: String(code) });
    this.httpSeconds.observe({ route, method }, seconds);
  }

  /** `count` watch events of `type` were written to streams (a publish's fan-out comes as one call). */
  onWatchEventsSent(type: string, count: number): void {
    this.eventsSent.set(type, (this.eventsSent.get(type) ?? 0) + count);
  }

  /** An xDS response of `type` ("Listener", "Cluster", "ClusterLoadAssignment") went out. */
  onXdsResponse(type: string): void {
    this.xdsResponses.set(type, (this.xdsResponses.get(type) ?? 0) + 1);
  }

  /** An xDS client rejected (NACKed) a response of `type`. */
  onXdsNack(type: string): void {
    this.xdsNacks.inc({ type });
  }

  /** A health probe finished. */
  onProbe(outcome: ProbeOutcome, seconds: number): void {
    this.probes.inc({ outcome });
    this.probeSeconds.observe({ outcome }, seconds);
  }

  /** A quota refused a request or a connection; `quota` is the setting's name, e.g. `MAX_INSTANCES`. */
  onQuotaRefused(quota: string): void {
    this.quotaRefusals.inc({ quota });
  }

  /** An authentication failed (`kind`: "key" or "token"), or was refused by the rate limit ("rate_limited"). */
  onAuthFailure(kind: "key" | "token" | "rate_limited"): void {
    this.authFailures.inc({ kind });
  }

  /** A store commit finished. */
  onCommit(op: string, outcome: CommitOutcome, seconds: number): void {
    let byOutcome = this.commitSeries.get(op);
    if (byOutcome === undefined) this.commitSeries.set(op, (byOutcome = new Map()));
    let series = byOutcome.get(outcome);
    if (series === undefined) byOutcome.set(outcome, (series = this.commitSeconds.series({ op, outcome })));
    series.observe(seconds);
  }
}
