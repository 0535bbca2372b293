import { DEFAULT_PROBE_DENY_CIDRS, parseCidrList } from "../health/probe-target-policy.js";

/**
 * Every setting the server reads, in one table: its environment name (the CLI
 * flag is derived from it), default and parser. The README's configuration
 * table mirrors this list.
 */
export interface SettingSpec<T> {
  readonly env: string;
  readonly description: string;
  readonly default: T;
  /** Throws an Error whose message says what is wrong; the caller names the setting. */
  readonly parse: (raw: string) => T;
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw.trim())) throw new Error(`must be a whole number, got ${JSON.stringify(raw)}`);
    const value = Number(raw.trim());
    if (value < min || value > max) throw new Error(`must be between ${min} and ${max}, got ${value}`);
    return value;
  };
}

function boolean(raw: string): boolean {
  const value = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(value)) return true;
  if (["0", "false", "no", "off"].includes(value)) return false;
  throw new Error(`must be true or false, got ${JSON.stringify(raw)}`);
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string): T => {
    const value = raw.trim().toLowerCase() as T;
    if (!values.includes(value)) throw new Error(`must be one of ${values.join(", ")}, got ${JSON.stringify(raw)}`);
    return value;
  };
}

function text(raw: string): string {
  return raw.trim();
}

/** A comma-separated CIDR list, checked now so a typo stops start-up; kept as text. */
function cidrList(raw: string): string {
  parseCidrList(raw);
  return raw.trim();
}

const spec = <T>(s: SettingSpec<T>): SettingSpec<T> => s;

/** The settings of SPEC 4.5 plus the watch-stream tunables. */
export const SETTINGS = {
  port: spec({
    env: "PORT",
    description: "the registry's port: gRPC, and HTTP/1.1 too unless PORT_SERVES_HTTP=false",
    default: 4000,
    parse: integer(0, 65535),
  }),
  portServesHttp: spec({
    env: "PORT_SERVES_HTTP",
    description: "serve the HTTP/JSON API, /healthz and /metrics on PORT beside gRPC, as the seed's examples use :4000 (false: gRPC only)",
    default: true,
    parse: boolean,
  }),
  host: spec({ env: "HOST", description: "bind address of the gRPC and HTTP ports", default: "0.0.0.0", parse: text }),
  httpPort: spec({
    env: "HTTP_PORT",
    description: "a separate HTTP port: /metrics, /healthz and the HTTP/JSON API (0 = off)",
    default: 4001,
    parse: integer(0, 65535),
  }),
  store: spec({
    env: "STORE",
    description: "where state lives: sqlite (durable, in DATA_DIR), etcd (shared by replicas) or memory (lost on restart)",
    default: "sqlite" as "sqlite" | "etcd" | "memory",
    parse: oneOf("sqlite", "etcd", "memory"),
  }),
  etcdEndpoints: spec({ env: "ETCD_ENDPOINTS", description: "etcd client URLs, comma separated (STORE=etcd)", default: "http://127.0.0.1:2379", parse: text }),
  etcdPrefix: spec({ env: "ETCD_PREFIX", description: "etcd key prefix; replicas sharing it form one registry", default: "/service-registry/", parse: text }),
  etcdUsername: spec({ env: "ETCD_USERNAME", description: "etcd user (with ETCD_PASSWORD)", default: "", parse: text }),
  etcdPassword: spec({ env: "ETCD_PASSWORD", description: "etcd password", default: "", parse: text }),
  etcdCaFile: spec({ env: "ETCD_CA_FILE", description: "CA certificate for etcd over TLS", default: "", parse: text }),
  etcdCertFile: spec({ env: "ETCD_CERT_FILE", description: "client certificate for etcd mTLS", default: "", parse: text }),
  etcdKeyFile: spec({ env: "ETCD_KEY_FILE", description: "client key for etcd mTLS", default: "", parse: text }),
  replicaId: spec({ env: "REPLICA_ID", description: "names this replica in etcd membership (default: random per start)", default: "", parse: text }),
  etcdLivenessWindowMs: spec({
    env: "ETCD_LIVENESS_WINDOW_MS",
    description: "how long no etcd member may answer (or, with several endpoints, the watch stay broken) before this replica counts etcd lost: it turns NOT_SERVING and ends its watch streams until it has caught up. Keep it above etcd's longest election (about twice --election-timeout)",
    default: 3000,
    parse: integer(2000, 600_000),
  }),
  etcdMemberTtlS: spec({ env: "ETCD_MEMBER_TTL_S", description: "lease TTL of a replica's membership: a dead replica's probes move after this", default: 5, parse: integer(2, 3600) }),
  storeSync: spec({
    env: "STORE_SYNC",
    description: "sqlite durability: normal survives a process crash, full also a power loss (fsync per commit group)",
    default: "normal" as "normal" | "full",
    parse: oneOf("normal", "full"),
  }),
  dataDir: spec({ env: "DATA_DIR", description: "data directory: registry.db and the generated key", default: "./data", parse: text }),
  registrationKey: spec({
    env: "SERVICE_REGISTRATION_KEY",
    description: "registration key(s), comma separated, each >= 16 characters; generated into DATA_DIR when unset",
    default: "",
    parse: text,
  }),
  healthChecks: spec({ env: "HEALTH_CHECKS", description: "probe instances' HTTP health endpoints", default: true, parse: boolean }),
  healthCheckIntervalMs: spec({ env: "HEALTH_CHECK_INTERVAL_MS", description: "time between probes of one instance", default: 5000, parse: integer(1) }),
  healthCheckBatchSize: spec({ env: "HEALTH_CHECK_BATCH_SIZE", description: "due probes dispatched per scheduler tick", default: 100, parse: integer(1) }),
  healthCheckMaxRequests: spec({ env: "HEALTH_CHECK_MAX_REQUESTS", description: "probes in flight at once", default: 10, parse: integer(1) }),
  healthCheckTtlMs: spec({ env: "HEALTH_CHECK_TTL_MS", description: "probe timeout", default: 2000, parse: integer(1) }),
  unhealthyThreshold: spec({ env: "UNHEALTHY_THRESHOLD", description: "consecutive failures before UNHEALTHY", default: 1, parse: integer(1) }),
  healthyThreshold: spec({ env: "HEALTHY_THRESHOLD", description: "consecutive passes before HEALTHY again", default: 1, parse: integer(1) }),
  deregisterAfterMs: spec({ env: "DEREGISTER_AFTER_MS", description: "remove instances unhealthy this long (0 = never)", default: 300_000, parse: integer(0) }),
  drainTimeoutMs: spec({ env: "DRAIN_TIMEOUT_MS", description: "remove instances still draining this long after Drain (0 = never)", default: 60_000, parse: integer(0) }),
  massFailureThresholdPercent: spec({
    env: "MASS_FAILURE_THRESHOLD_PERCENT",
    description: "when more than this percent of the instances this process probes start failing within one probe interval (and MASS_FAILURE_MIN_INSTANCES, MASS_FAILURE_MIN_SERVICE_TYPES), suspect the registry's own network: hold every health state, remove nothing, report NOT_SERVING (0 = off)",
    default: 60,
    parse: integer(0, 100),
  }),
  massFailureMinInstances: spec({ env: "MASS_FAILURE_MIN_INSTANCES", description: "failing instances needed before the registry suspects its own network", default: 10, parse: integer(1) }),
  massFailureMinServiceTypes: spec({ env: "MASS_FAILURE_MIN_SERVICE_TYPES", description: "service types the failing instances must span before the registry suspects its own network", default: 2, parse: integer(1) }),
  panicThresholdPercent: spec({
    env: "PANIC_THRESHOLD_PERCENT",
    description: "a service type with fewer than this percent of its instances healthy is in panic: GetByType answers with all of them, flagged panic, and none expires (0 = off)",
    default: 50,
    parse: integer(0, 100),
  }),
  panicMinInstances: spec({ env: "PANIC_MIN_INSTANCES", description: "service types with fewer instances than this are never in panic (they answer healthy instances only, as without panic)", default: 3, parse: integer(1) }),
  xds: spec({ env: "XDS", description: "serve the xDS control plane (envoy ADS) on the gRPC port, for proxyless gRPC clients dialling xds:///TYPE", default: true, parse: boolean }),
  xdsAllowUnauthenticated: spec({
    env: "XDS_ALLOW_UNAUTHENTICATED",
    description: "serve xDS streams that present no credentials (none in the node metadata or the call, no client certificate); anyone who can connect then reads every service type's endpoints",
    default: false,
    parse: boolean,
  }),
  historySize: spec({ env: "HISTORY_SIZE", description: "changes kept for watchers to resume from", default: 10_000, parse: integer(1) }),
  watchQueueLimit: spec({ env: "WATCH_QUEUE_LIMIT", description: "events buffered per watch stream before it catches up from history", default: 1024, parse: integer(1) }),
  bookmarkIntervalMs: spec({ env: "BOOKMARK_INTERVAL_MS", description: "idle time before a watch stream gets a BOOKMARK", default: 30_000, parse: integer(1) }),
  watchStallTimeoutMs: spec({ env: "WATCH_STALL_TIMEOUT_MS", description: "end a watch stream that accepts nothing this long", default: 60_000, parse: integer(1) }),
  shutdownGraceMs: spec({ env: "SHUTDOWN_GRACE_MS", description: "wait for in-flight calls on SIGTERM", default: 5000, parse: integer(0) }),
  tlsCertFile: spec({ env: "TLS_CERT_FILE", description: "PEM certificate (chain): serve gRPC and HTTP over TLS (with TLS_KEY_FILE)", default: "", parse: text }),
  tlsKeyFile: spec({ env: "TLS_KEY_FILE", description: "PEM private key of TLS_CERT_FILE", default: "", parse: text }),
  tlsClientCaFile: spec({
    env: "TLS_CLIENT_CA_FILE",
    description: "PEM CA bundle: require client certificates it signed (mTLS; needs TLS_CERT_FILE)",
    default: "",
    parse: text,
  }),
  logLevel: spec({
    env: "LOG_LEVEL",
    description: "pino level",
    default: "info" as "info",
    parse: oneOf("fatal", "error", "warn", "info", "debug", "trace", "silent"),
  }),
  logFormat: spec({
    env: "LOG_FORMAT",
    description: "log lines: json (one object a line), pretty (human-readable, pino-pretty) or auto (pretty when stdout is a terminal)",
    default: "auto" as "auto" | "json" | "pretty",
    parse: oneOf("auto", "json", "pretty"),
  }),
  maxInstances: spec({ env: "MAX_INSTANCES", description: "live instances in all; a Register past it gets RESOURCE_EXHAUSTED (0 = no bound)", default: 100_000, parse: integer(0) }),
  maxInstancesPerType: spec({ env: "MAX_INSTANCES_PER_TYPE", description: "live instances of one service type (0 = no bound)", default: 20_000, parse: integer(0) }),
  maxInstancesPerKey: spec({ env: "MAX_INSTANCES_PER_KEY", description: "live instances registered with one registration key (0 = no bound)", default: 100_000, parse: integer(0) }),
  metricsServiceTypes: spec({
    env: "METRICS_SERVICE_TYPES",
    description: "service types with series of their own in registry_instances (those with the most instances); the rest are summed as _other",
    default: 100,
    parse: integer(0),
  }),
  maxServiceTypes: spec({ env: "MAX_SERVICE_TYPES", description: "service types with live instances (0 = no bound)", default: 10_000, parse: integer(0) }),
  probeAllowCidrs: spec({
    env: "PROBE_ALLOW_CIDRS",
    description: "probe only addresses in these CIDR ranges, comma separated (empty: any address not denied); PROBE_DENY_CIDRS wins over it",
    default: "",
    parse: cidrList,
  }),
  probeDenyCidrs: spec({
    env: "PROBE_DENY_CIDRS",
    description: "never probe addresses in these CIDR ranges (names are resolved and checked at every probe; none = deny nothing)",
    default: DEFAULT_PROBE_DENY_CIDRS,
    parse: cidrList,
  }),
  probeCaFile: spec({
    env: "PROBE_CA_FILE",
    description: "PEM CA bundle trusted, besides the system's CAs, by gRPC health checks over TLS",
    default: "",
    parse: text,
  }),
  authFailuresPerMinute: spec({
    env: "AUTH_FAILURES_PER_MINUTE",
    description: "failed authentications (wrong key or token) one address (IPv6: its /64) may make per minute, sustained; beyond that its calls get RESOURCE_EXHAUSTED unchecked (0 = no limit)",
    default: 120,
    parse: integer(0),
  }),
  authFailureBurst: spec({
    env: "AUTH_FAILURE_BURST",
    description: "failed authentications one address may make at once before AUTH_FAILURES_PER_MINUTE applies",
    default: 100,
    parse: integer(1),
  }),
  authFailureAddresses: spec({
    env: "AUTH_FAILURE_ADDRESSES",
    description: "addresses with recent failed authentications tracked at most (bounds the limiter's memory; the least recent is forgotten)",
    default: 10_000,
    parse: integer(1),
  }),
  maxConnections: spec({
    env: "MAX_CONNECTIONS",
    description: "connections open at once on PORT and HTTP_PORT together; more are closed at accept (0 = three quarters of the open-file limit, at most 50000)",
    default: 0,
    parse: integer(0),
  }),
  maxConnectionsPerAddress: spec({
    env: "MAX_CONNECTIONS_PER_ADDRESS",
    description: "connections open at once from one remote address; more are closed at accept (0 = a quarter of MAX_CONNECTIONS)",
    default: 0,
    parse: integer(0),
  }),
  maxWatchStreams: spec({
    env: "MAX_WATCH_STREAMS",
    description: "WatchInstances streams open at once, and apart from them GET /watch streams; more are answered RESOURCE_EXHAUSTED (HTTP 429)",
    default: 10_000,
    parse: integer(1),
  }),
  maxWatchStreamsPerConnection: spec({
    env: "MAX_WATCH_STREAMS_PER_CONNECTION",
    description: "WatchInstances streams open at once on one connection; more are answered RESOURCE_EXHAUSTED",
    default: 500,
    parse: integer(1),
  }),
  maxWatchStreamsPerInstance: spec({
    env: "MAX_WATCH_STREAMS_PER_INSTANCE",
    description: "WatchInstances streams open at once under one instance's credentials, and apart from them GET /watch streams; more are answered RESOURCE_EXHAUSTED (HTTP 429). Keys have no such quota",
    default: 500,
    parse: integer(1),
  }),
  consoleSampleIntervalMs: spec({
    env: "CONSOLE_SAMPLE_INTERVAL_MS",
    description: "how often the web console's charts sample each service type's healthy count and the prober's lag (the last hour is kept in memory)",
    default: 10_000,
    parse: integer(100),
  }),
  maxXdsStreams: spec({
    env: "MAX_XDS_STREAMS",
    description: "xDS (ADS) streams open at once; more are answered RESOURCE_EXHAUSTED",
    default: 10_000,
    parse: integer(1),
  }),
  maxXdsStreamsPerConnection: spec({
    env: "MAX_XDS_STREAMS_PER_CONNECTION",
    description: "xDS (ADS) streams open at once on one connection; more are answered RESOURCE_EXHAUSTED",
    default: 500,
    parse: integer(1),
  }),
  maxXdsStreamsPerInstance: spec({
    env: "MAX_XDS_STREAMS_PER_INSTANCE",
    description: "xDS (ADS) streams open at once under one instance's credentials; more are answered RESOURCE_EXHAUSTED. Keys have no such quota",
    default: 500,
    parse: integer(1),
  }),
  maxMessageBytes: spec({
    env: "MAX_MESSAGE_BYTES",
    description: "largest gRPC request message, decompressed; larger ones are answered RESOURCE_EXHAUSTED. The largest valid registry request is about 40 KB; xDS requests grow with the resources named",
    default: 262_144,
    parse: integer(65_536, 4_194_304),
  }),
  keepaliveTimeMs: spec({
    env: "KEEPALIVE_TIME_MS",
    description: "ping each gRPC connection this often (HTTP/2 PING), and send each KeepAlive session a message this often",
    default: 10_000,
    parse: integer(100),
  }),
  keepaliveTimeoutMs: spec({
    env: "KEEPALIVE_TIMEOUT_MS",
    description: "close a gRPC connection whose ping is unanswered this long: its sessions end (a frozen or unreachable peer)",
    default: 5000,
    parse: integer(100),
  }),
  connectionMaxAgeMs: spec({
    env: "CONNECTION_MAX_AGE_MS",
    description: "ask a gRPC connection to go away after this long, so clients rebalance across replicas (0 = never; streams on it, KeepAlive sessions too, are cut soon after: see docs/operations.md)",
    default: 0,
    parse: integer(0),
  }),
  connectionIdleMs: spec({
    env: "CONNECTION_IDLE_MS",
    description: "close a gRPC connection with no call in flight for this long (GOAWAY; clients reconnect when needed)",
    default: 300_000,
    parse: integer(1000),
  }),
  connectionPrefaceTimeoutMs: spec({
    env: "CONNECTION_PREFACE_TIMEOUT_MS",
    description: "close a connection on PORT that has not finished its TLS handshake and its first bytes (for HTTP/2: the whole preface) this long after accept",
    default: 5000,
    parse: integer(100),
  }),
  requestReadTimeoutMs: spec({
    env: "REQUEST_READ_TIMEOUT_MS",
    description: "end a call whose request has not arrived in full this long after it started (DEADLINE_EXCEEDED): a peer trickling bytes keeps no connection busy",
    default: 10_000,
    parse: integer(1),
  }),
};

export type SettingName = keyof typeof SETTINGS;

/** Resolved configuration. */
export type Config = { [K in SettingName]: (typeof SETTINGS)[K]["default"] };

/** `HEALTH_CHECK_INTERVAL_MS` -> `--health-check-interval-ms`. */
export function flagName(env: string): string {
  return `--${env.toLowerCase().replaceAll("_", "-")}`;
}
