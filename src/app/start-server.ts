import { unwatchFile, watchFile, type Stats } from "node:fs";
import type { Socket } from "node:net";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/settings.js";
import type { SettingOrigin } from "../config/load-config.js";
import { resolveRegistrationKeys, weakKeyWarning, type KeySource, type ResolvedKeys } from "../config/registration-key.js";
import { AuthFailureLimiter } from "../api/auth-failure-limiter.js";
import { loadProbeCa, loadTls } from "../config/tls.js";
import { RegistryApi } from "../api/registry-api.js";
import { CheckProber } from "../health/check-prober.js";
import { ProbeTargetPolicy } from "../health/probe-target-policy.js";
import { RegistryHttpServer } from "../http/http-server.js";
import { consoleRoutes } from "../http/console-routes.js";
import { jsonApiRoutes } from "../http/json-api.js";
import { opsRoutes } from "../http/ops-routes.js";
import { instrumentProbe } from "../observability/instrumented-probe.js";
import { HealthSeries } from "../console/health-series.js";
import { LastProbes } from "../console/last-probes.js";
import { consoleDataRoutes } from "../http/console-data-routes.js";
import { HttpWatchStreams } from "../http/watch-route.js";
import { shuttingDown } from "../registry/watcher.js";
import { RegistryMetrics } from "../observability/registry-metrics.js";
import { servingSummary } from "../logging/serving-summary.js";
import { ServingState } from "../observability/serving-state.js";
import { RegistrationKeys } from "../registry/credentials.js";
import { ServiceRegistry } from "../registry/service-registry.js";
import { RegistryGrpcServer } from "../server/grpc-server.js";
import { routeGrpcJsLog } from "../server/grpc-js-log.js";
import { ThrottledWarning } from "../logging/throttled-warning.js";
import { ConnectionLimits, effectiveConnectionLimits } from "../transport/connection-limits.js";
import { PortListener } from "../transport/port-listener.js";
import { createStore } from "../store/create-store.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import { ensureDir } from "../util/ensure-dir.js";
import type { RegistryStore } from "../registry/registry-store.js";
import type { CommitObserver } from "../registry/commit-outcomes.js";

/** A started registry server. */
export interface RunningServer {
  readonly port: number;
  /** The separate HTTP port (/metrics, /healthz, JSON API), or undefined when HTTP_PORT=0. */
  readonly httpPort: number | undefined;
  readonly registry: ServiceRegistry;
  readonly metrics: RegistryMetrics;
  /** Graceful stop: streams end with UNAVAILABLE, in-flight calls finish, the store is flushed. */
  close(): Promise<void>;
  /**
   * STORE=sqlite: writes an online backup to `DATA_DIR/backups/` and resolves
   * with its path. Undefined for stores that keep no local file.
   */
  readonly backup: (() => Promise<string>) | undefined;
  /**
   * Accepts the registration keys `configured` names from now on (SIGHUP,
   * with the configuration read again): removed keys are refused at once and
   * watch streams opened with them end with UNAUTHENTICATED; instance tokens
   * are untouched. On a bad configuration the current keys stay. Logs the
   * outcome with counts, never a key. Returns whether the keys were replaced.
   */
  reloadKeys(configured: string, origin?: SettingOrigin): boolean;
}

/** Overrides for embedding and tests. */
export interface StartOptions {
  /** Use this store instead of the one `STORE` names. */
  readonly store?: RegistryStore;
  /** Serve HTTP on this port instead of HTTP_PORT; here 0 means an ephemeral port (HTTP_PORT=0 turns HTTP off). */
  readonly httpPort?: number;
  /** Where `config.registrationKey` came from, for the start-up line (`loadConfigWithOrigins`). */
  readonly registrationKeyOrigin?: SettingOrigin;
}

/** Builds the registry from a configuration and serves it over gRPC and HTTP. */
export async function startServer(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningServer> {
  // Before the store: the etcd client's grpc-js lines too.
  routeGrpcJsLog(logger);
  const tls = loadTls(config);
  const probeCa = loadProbeCa(config.probeCaFile);
  const resolvedKeys = resolveRegistrationKeys(config.registrationKey, config.dataDir, options.registrationKeyOrigin);
  const keys = new RegistrationKeys(resolvedKeys.keys);
  const reloadKeys = (configured: string, origin?: SettingOrigin): boolean => {
    let next: ResolvedKeys;
    try {
      next = resolveRegistrationKeys(configured, config.dataDir, origin, { generate: false });
    } catch (err) {
      // ConfigError messages name settings and files, never a key.
      logger.error({ reason: (err as Error).message }, "registration keys not reloaded; the current keys stay");
      return false;
    }
    const { added, removed } = keys.replace(next.keys);
    keyFile.follow(next.source);
    logger.info(
      { keys: keys.size, added, removed, keySource: next.source.from, keySourceFile: next.source.path },
      "registration keys reloaded",
    );
    const weak = weakKeyWarning(next.keys);
    if (weak) logger.warn({ keySource: next.source.from }, weak);
    return true;
  };
  // A key that came from the key file is reloaded when that file changes.
  const keyFile = new KeyFileFollower(() => reloadKeys(""));
  keyFile.follow(resolvedKeys.source);
  const serving = new ServingState();
  const metrics = new RegistryMetrics();
  const store = options.store ?? (await createStore(config, logger));
  // A store that watches its own backend (etcd) says when it is lost and
  // regained; there one failed commit is a caller's deadline or a blip, not a
  // verdict, and only another commit could clear it: a replica that balancers
  // stop sending writes to would stay NOT_SERVING for good.
  const storeJudgesItself = store.onAvailabilityChange !== undefined;
  const commitObserver: CommitObserver = {
    onCommit: (op, outcome, seconds) => metrics.onCommit(op, outcome, seconds),
    onFailingChange(failing, err) {
      if (storeJudgesItself) {
        if (failing) logger.warn({ err }, "store commit failed");
        return;
      }
      serving.set("store_failing", failing, "a store commit failed");
      if (failing) logger.error({ err }, "store commit failed; reporting NOT_SERVING until the store takes writes again");
      else logger.warn("store takes writes again; serving");
    },
  };
  // Probes wait until the server is up to load their HTTP client (undici,
  // ~110 modules): it serves first, and probes due during start-up run just after.
  let markUp: () => void = () => {};
  const up = new Promise<void>((resolve) => (markUp = resolve));
  const probeTargetPolicy = new ProbeTargetPolicy({ allow: config.probeAllowCidrs, deny: config.probeDenyCidrs });
  const prober = config.healthChecks ? new CheckProber({ timeoutMs: config.healthCheckTtlMs, targetPolicy: probeTargetPolicy, ca: probeCa }, up) : undefined;
  // What the console shows beside each instance: its latest probe, fed by the probe wrapper the metrics use.
  let lastProbes: LastProbes | undefined;
  const registry = new ServiceRegistry({
    store,
    commitObserver,
    logger,
    ...(prober
      ? {
          probe: instrumentProbe(
            (t, s) => prober.probe(t, s),
            (o, seconds, target, result) => {
              metrics.onProbe(o, seconds);
              lastProbes?.probed(target.id, seconds, result.ok);
            },
          ),
        }
      : {}),
    healthChecks: config.healthChecks,
    healthCheckInterval: config.healthCheckIntervalMs,
    healthCheckBatchSize: config.healthCheckBatchSize,
    healthCheckMaxRequests: config.healthCheckMaxRequests,
    healthCheckTTL: config.healthCheckTtlMs,
    unhealthyThreshold: config.unhealthyThreshold,
    healthyThreshold: config.healthyThreshold,
    deregisterAfter: config.deregisterAfterMs,
    drainTimeout: config.drainTimeoutMs,
    massFailureThreshold: config.massFailureThresholdPercent,
    massFailureMinInstances: config.massFailureMinInstances,
    massFailureMinServiceTypes: config.massFailureMinServiceTypes,
    panicThreshold: config.panicThresholdPercent,
    panicMinInstances: config.panicMinInstances,
    historySize: config.historySize,
    watchQueueLimit: config.watchQueueLimit,
    bookmarkInterval: config.bookmarkIntervalMs,
    quotas: {
      MAX_INSTANCES: bound(config.maxInstances),
      MAX_INSTANCES_PER_TYPE: bound(config.maxInstancesPerType),
      MAX_INSTANCES_PER_KEY: bound(config.maxInstancesPerKey),
      MAX_SERVICE_TYPES: bound(config.maxServiceTypes),
    },
    onQuotaRefused: (quota) => metrics.onQuotaRefused(quota),
    probeTargetPolicy,
  });
  try {
    await registry.start();
  } catch (err) {
    await registry.close().catch(() => undefined);
    prober?.close();
    throw err;
  }
  serving.follow(registry);
  const authLimiter = new AuthFailureLimiter({
    failuresPerMinute: config.authFailuresPerMinute,
    burst: config.authFailureBurst,
    maxAddresses: config.authFailureAddresses,
    logger,
  });
  const api = new RegistryApi(registry, keys, { limiter: authLimiter, onFailure: (kind) => metrics.onAuthFailure(kind) });
  const grpc = new RegistryGrpcServer({
    registry,
    keys,
    api,
    logger,
    serving,
    metrics,
    watchStallTimeoutMs: config.watchStallTimeoutMs,
    shutdownGraceMs: config.shutdownGraceMs,
    requestReadTimeoutMs: config.requestReadTimeoutMs,
    maxWatchStreams: config.maxWatchStreams,
    maxWatchStreamsPerConnection: config.maxWatchStreamsPerConnection,
    maxWatchStreamsPerInstance: config.maxWatchStreamsPerInstance,
    serverOptions: grpcConnectionOptions(config),
    sessionMessageIntervalMs: config.keepaliveTimeMs,
    ...(config.xds
      ? {
          xds: {
            trust: config.xdsAllowUnauthenticated ? "none" : tls?.clientCa ? "certificate" : "credentials",
            maxStreams: config.maxXdsStreams,
            maxStreamsPerConnection: config.maxXdsStreamsPerConnection,
            maxStreamsPerInstance: config.maxXdsStreamsPerInstance,
          },
        }
      : {}),
  });
  metrics.observe({
    registry,
    serving,
    watchStreams: () => grpc.watchStreamCount,
    xdsStreams: () => grpc.xdsStreamCount,
    serviceTypeSeries: config.metricsServiceTypes,
  });
  const wantedHttpPort = options.httpPort ?? (config.httpPort === 0 ? undefined : config.httpPort);
  const limits = connectionLimits(config, metrics, logger);
  lastProbes = new LastProbes(registry);
  const healthSeries = new HealthSeries(registry, { intervalMs: config.consoleSampleIntervalMs });
  const httpWatches = new HttpWatchStreams(api, {
    logger,
    stallTimeoutMs: config.watchStallTimeoutMs,
    maxStreams: config.maxWatchStreams,
    maxStreamsPerInstance: config.maxWatchStreamsPerInstance,
    onQuotaRefused: (quota) => metrics.onQuotaRefused(quota),
  });
  const http = new RegistryHttpServer({
    routes: [
      ...opsRoutes(metrics, serving),
      ...jsonApiRoutes(api),
      httpWatches.route,
      ...consoleDataRoutes(api, lastProbes, healthSeries),
      ...consoleRoutes(),
    ],
    metrics,
    logger,
    limits,
    ...(tls ? { tls: { cert: tls.cert, key: tls.key, ca: tls.clientCa } } : {}),
  });
  // PORT: gRPC and, as the seed's examples use it, HTTP/1.1 (TLS, if any, ends here for both).
  const shared = new PortListener({
    grpc: (socket) => grpc.acceptConnection(socket),
    http: config.portServesHttp ? (socket) => http.acceptConnection(socket) : refuseHttp,
    firstByteTimeoutMs: config.connectionPrefaceTimeoutMs,
    limits,
    ...(tls ? { tls: { cert: tls.cert, key: tls.key, ca: tls.clientCa } } : {}),
  });
  /** Stops everything started above, in order; HTTP requests in flight get `httpGraceMs`. */
  const stop = async (httpGraceMs: number): Promise<void> => {
    const unbound = shared.close();
    // Watch streams end at once, as gRPC's do: they would hold the HTTP server's grace period to its end.
    httpWatches.endAll(shuttingDown());
    await Promise.all([grpc.shutdown(), http.close(httpGraceMs)]);
    shared.destroyConnections();
    await unbound;
    healthSeries.stop();
    await registry.close();
    prober?.close();
    authLimiter.close();
    keyFile.close();
  };
  let port: number;
  let httpPort: number | undefined;
  try {
    port = await listenOn(shared, "PORT", config.host, config.port);
    httpPort = wantedHttpPort === undefined ? undefined : await listenOn(http, "HTTP_PORT", config.host, wantedHttpPort);
  } catch (err) {
    await stop(0);
    throw err;
  }
  const transport = tls ? (tls.clientCa ? "mtls" : "tls") : "plaintext";
  // The first line a person sees (key resolution and store opening log only trouble).
  const { source: keySource } = resolvedKeys;
  logger.info(
    {
      host: config.host, port, portServesHttp: config.portServesHttp, httpPort, tls: transport, store: config.store, dataDir: config.dataDir,
      epoch: registry.epoch, instances: registry.size, pid: process.pid, keySource: keySource.from, keySourceFile: keySource.path,
    },
    servingSummary({
      ...config,
      port,
      httpPort,
      tls: transport,
      dataDir: resolve(config.dataDir),
      keyCount: resolvedKeys.keys.length,
      keySource,
    }),
  );
  const weak = weakKeyWarning(resolvedKeys.keys);
  if (weak) logger.warn({ keySource: keySource.from }, weak);
  if (tls && Date.parse(tls.leaf.validTo) < Date.now()) {
    logger.warn({ validTo: tls.leaf.validTo, subject: tls.leaf.subject }, "TLS_CERT_FILE has expired: clients will refuse it");
  }
  markUp();
  healthSeries.start();
  return {
    port,
    httpPort,
    registry,
    metrics,
    reloadKeys,
    backup:
      store instanceof SqliteStore
        ? async () => {
            const dir = join(resolve(config.dataDir), "backups");
            ensureDir(dir);
            const path = join(dir, `registry-${new Date().toISOString().replaceAll(":", "-")}.db`);
            await store.backup(path);
            return path;
          }
        : undefined,
    close: () => stop(config.shutdownGraceMs),
  };
}

/**
 * Watches the key file while the keys come from it, by polling its stat
 * once a second: that sees a file replaced by rename (as editors and
 * `mv` do) as well as one rewritten in place, and costs nothing per store
 * commit (watching DATA_DIR itself would wake on every write to the
 * database beside it).
 */
class KeyFileFollower {
  private path: string | undefined;
  private readonly listener = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    this.onChange();
  };

  constructor(private readonly onChange: () => void) {}

  /** Follows the key file when `source` is it, and nothing otherwise. */
  follow(source: KeySource): void {
    const path = source.from === "file" || source.from === "generated" ? source.path : undefined;
    if (path === this.path) return;
    this.close();
    this.path = path;
    if (path !== undefined) watchFile(path, { interval: 1000, persistent: false }, this.listener);
  }

  close(): void {
    if (this.path !== undefined) unwatchFile(this.path, this.listener);
    this.path = undefined;
  }
}

/**
 * grpc-js server options that bound what one HTTP/2 connection can hold.
 * Keepalive: a peer that does not answer a PING (frozen, gone) is cut, and
 * nothing else times out a connection with a call in flight; its KeepAlive
 * sessions end with it, which is how a frozen session holder is found. Idle: a
 * connection with no call for CONNECTION_IDLE_MS gets a GOAWAY (clients
 * reconnect on their next call). Age (CONNECTION_MAX_AGE_MS, off by
 * default): a connection is asked to go away after it (grpc-js adds ±10%
 * jitter) and cut after a grace, so long-lived clients rebalance across
 * replicas. grpc-js's next keepalive ping after the GOAWAY ends the
 * connection anyway, streams and all: a KeepAlive session on it ends, and
 * its instance fails, unless its client opened a new one on GOAWAY (the
 * SDK does; most libraries do not tell their application). Concurrent
 * streams: room for MAX_WATCH_STREAMS_PER_CONNECTION watches plus unary
 * calls; nghttp2 refuses streams beyond it, clients queue them. Message
 * size: grpc-js holds what a compressed request inflates to, up to this
 * bound, before any credential is read; its default (4 MiB) let a few KB
 * of gzip hold megabytes per call.
 */
function grpcConnectionOptions(config: Config): Record<string, number> {
  return {
    "grpc.keepalive_time_ms": config.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": config.keepaliveTimeoutMs,
    "grpc.max_connection_idle_ms": config.connectionIdleMs,
    ...(config.connectionMaxAgeMs > 0 ? { "grpc.max_connection_age_ms": config.connectionMaxAgeMs, "grpc.max_connection_age_grace_ms": 300_000 } : {}),
    "grpc.max_concurrent_streams": Math.max(1000, config.maxWatchStreamsPerConnection + 100),
    "grpc.max_receive_message_length": config.maxMessageBytes,
  };
}

/**
 * Binds `listener` to `host`:`port`. A failure names the setting and the
 * address, as an operator reads it in the one line `serve` prints before it
 * exits (e.g. `PORT: 127.0.0.1:50051 is already in use ...`); the system's
 * error stays as `cause`, its `code` (EADDRINUSE, EACCES) on the error.
 */
async function listenOn(listener: { listen(host: string, port: number): Promise<number> }, setting: string, host: string, port: number): Promise<number> {
  try {
    return await listener.listen(host, port);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    const why =
      code === "EADDRINUSE" ? `is already in use: stop what listens there or set ${setting} to another port`
      : code === "EACCES" ? `needs privileges this process lacks: use a port from 1024 up or grant them`
      : `cannot be bound: ${(err as Error).message}`;
    throw Object.assign(new Error(`${setting}: ${address} ${why}`, { cause: err }), { code });
  }
}

/** MAX_CONNECTIONS / MAX_CONNECTIONS_PER_ADDRESS for every listener: each refusal counted and (throttled) logged. */
function connectionLimits(config: Config, metrics: RegistryMetrics, logger: Logger): ConnectionLimits {
  const caps = effectiveConnectionLimits(config);
  const warning = new ThrottledWarning({ logger });
  return new ConnectionLimits({
    ...caps,
    onRefused(quota, address) {
      metrics.onQuotaRefused(quota);
      const limit = quota === "MAX_CONNECTIONS" ? caps.maxConnections : caps.maxConnectionsPerAddress;
      warning.note(quota, `connection refused at accept: ${quota} (${limit}) reached`, { quota, limit, address });
    },
  });
}

/** PORT_SERVES_HTTP=false: an HTTP/1.1 client on PORT is told where HTTP is, not left hanging. */
function refuseHttp(socket: Socket): void {
  const body = "this port serves gRPC only (PORT_SERVES_HTTP=false); HTTP is on HTTP_PORT\n";
  socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`, () => socket.destroy());
}

/** A quota setting as a bound: 0 means none. */
function bound(setting: number): number {
  return setting === 0 ? Infinity : setting;
}
