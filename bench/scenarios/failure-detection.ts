import type { DetectionSample, DriverSettings, Kind } from "../load/detect-driver.js";
import type { BenchContext } from "../lib/context.js";
import { BenchChild } from "../lib/ipc.js";
import type { Figure, Reference } from "../lib/report.js";
import { distribution, sleep } from "../lib/stats.js";
import type { SeedBlock } from "../servers/registry-server.js";

type GcResult = { rss: number; heapUsed: number; external: number };

/**
 * The peers' documented defaults, not measured here:
 * - Kubernetes probes (liveness and readiness alike): periodSeconds 10,
 *   failureThreshold 3, so 30 s of failures before a container is restarted
 *   or taken out of its Service's endpoints
 *   (kubernetes.io, "Configure Liveness, Readiness and Startup Probes").
 * - Consul: a check's interval has no default; the documentation's examples
 *   use 10 s (developer.hashicorp.com/consul/docs, "Health checks").
 * - Eureka: clients renew their lease every 30 s and the server expires an
 *   instance after 90 s without a renewal (leaseRenewalIntervalInSeconds,
 *   leaseExpirationDurationInSeconds; the Eureka wiki and Spring Cloud Netflix).
 */
const K8S: Reference = { name: "k8s probe default 10 s × 3 (doc.)", value: 30_000 };
const CONSUL: Reference = { name: "Consul check every 10 s (doc. example)", value: 10_000 };
const EUREKA: Reference = { name: "Eureka lease expiry 90 s (doc. default)", value: 90_000 };

/** The server's HTTP/2 keepalive (src/app/start-server.ts): a ping every 10 s, 5 s for its answer. */
const KEEPALIVE_BOUND_MS = 15_000;

const PROBED: readonly Kind[] = ["http", "grpc", "tcp"];

/** Addresses of a health farm serving `count` HTTP instances (as scenario 4's). */
async function startBystanders(count: number) {
  const farm = BenchChild.start<{ healthyAddresses: { host: string; port: number }[] }>("s6-bystanders", "servers/health-farm.ts", [
    JSON.stringify({ healthy: count, blackhole: 0, net: 30 }),
  ]);
  const { healthyAddresses } = await farm.ready;
  return { farm, blocks: healthyAddresses.map(({ host, port }): SeedBlock => ({ serviceType: "detect-bystander", host, port, count: 1 })) };
}

/** p50 and p99 of one column; a miss (not seen within the wait) counts as infinitely late. */
function column(samples: readonly DetectionSample[], pick: (s: DetectionSample) => number | undefined) {
  const values = samples.map((s) => pick(s) ?? Infinity);
  return { ...distribution(values), missed: values.filter((v) => v === Infinity).length };
}

/**
 * Scenario 6, failure detection: how long after an instance dies the
 * registry's watchers and routers know, for each health check kind, and what
 * a held session costs in memory.
 *
 * Backends are real processes (bench/load/detect-backend.mjs), one per
 * instance, registered with the check kind under test: http (serves
 * /health), grpc (grpc.health.v1 through grpc-js and grpc-health-check), tcp
 * (listens), ttl (heartbeats), session (holds KeepAlive). The driver
 * (bench/load/detect-driver.ts) spawns and routes to each before the clock
 * starts, sends SIGKILL, and times on its own clock, from the signal: a
 * WatchInstances stream decoding the instance's HEALTH_CHECK_FAILED; the
 * SDK's resolver (a grpc-js channel on `registry:///detect-<kind>`, round
 * robin, calling every 4 ms) handing grpc-js a list without it; and the last
 * call its picker sent to it. Then SIGSTOP (a hung backend), and 10,000
 * sessions held against a second registry for the RSS each costs.
 *
 * The registry is `serve`'s composition with a 1 s probe interval and 0.5 s
 * timeout, the rest at serve's defaults (the mass-failure guard, the panic
 * threshold, UNHEALTHY_THRESHOLD 1), while it also probes `bystanders` HTTP
 * instances of another type, as a registry in a fleet does.
 */
export async function failureDetectionScenario(ctx: BenchContext): Promise<void> {
  const p = ctx.params.detection;
  const { farm, blocks } = await startBystanders(p.bystanders);
  const reg = await ctx.startRegistry("s6-detect", {
    store: "sqlite",
    healthChecks: true,
    healthCheckInterval: p.intervalMs,
    healthCheckTTL: p.timeoutMs,
  });
  await reg.child.request("seed", blocks);
  const driver = BenchChild.start("s6-driver", "load/detect-driver.ts");
  await driver.ready;
  const settings: DriverSettings = { registry: reg.address, ttlMs: p.ttlMs, heartbeatMs: p.heartbeatMs, pingEveryMs: 4, callDeadlineMs: 250 };
  await driver.request("connect", settings);
  ctx.log(`scenario 6: ${p.standing} standing backends of each kind, ${p.bystanders} bystanders probed every ${p.intervalMs} ms`);
  await driver.request("standing", { perKind: p.standing });

  const probeBound = p.intervalMs + p.timeoutMs;
  const killWait: Record<Kind, number> = {
    http: 2 * p.intervalMs + p.timeoutMs + 1000,
    grpc: 2 * p.intervalMs + p.timeoutMs + 1000,
    tcp: 2 * p.intervalMs + p.timeoutMs + 1000,
    ttl: p.ttlMs + 1000,
    session: 1000,
  };
  const kills: DetectionSample[] = [];
  let oddities: unknown;
  for (let r = 0; r < p.rounds; r++) {
    ctx.log(`scenario 6: kill round ${r + 1}/${p.rounds}, ${p.victims} of each kind`);
    const round = await driver.request<{ samples: DetectionSample[]; oddities: unknown }>(
      "killRound",
      { victims: p.victims, parallel: p.parallel, timeoutMs: killWait },
      600_000,
    );
    kills.push(...round.samples);
    oddities = round.oddities;
  }

  const stopWait: Record<Kind, number> = {
    http: 2 * (p.intervalMs + p.timeoutMs) + 1000,
    grpc: 2 * (p.intervalMs + p.timeoutMs) + 1000,
    tcp: 3 * probeBound,
    ttl: p.ttlMs + 1000,
    session: KEEPALIVE_BOUND_MS + 3000,
  };
  const stopKinds: Kind[] = p.stopSessions ? ["http", "grpc", "tcp", "ttl", "session"] : ["http", "grpc", "tcp", "ttl"];
  ctx.log(`scenario 6: SIGSTOP, ${p.stopVictims} of ${stopKinds.join(", ")}`);
  const stopped = await driver.request<{ samples: DetectionSample[]; oddities: unknown }>(
    "stopRound",
    { victims: p.stopVictims, kinds: stopKinds, timeoutMs: stopWait },
    600_000,
  );
  oddities = stopped.oddities;
  await driver.request("stop").catch(() => undefined);
  await reg.child.stop();
  await farm.stop();

  const memory = await sessionMemory(ctx);

  const settingsText = `every ${p.intervalMs / 1000} s, timeout ${p.timeoutMs / 1000} s`;
  const caseOf = (kind: Kind, what: string): string =>
    kind === "ttl" ? `ttl, ${what}, ttl ${p.ttlMs / 1000} s, beat ${(p.heartbeatMs / 1000).toFixed(2)} s`
    : kind === "session" ? `session, ${what}`
    : `${kind}, ${what}, ${settingsText}`;
  const bound = (kind: Kind): Reference | undefined =>
    kind === "ttl" ? { name: "ttl + 100 ms", value: p.ttlMs + 100 } : kind === "session" ? undefined : { name: "interval + timeout", value: probeBound };
  const targets = (kind: Kind): Figure["targets"] =>
    kind === "session" ? [{ against: "absolute", op: "<=", bound: 200 }] : [{ against: "ceiling", op: "<=", bound: 1 }];
  const watcherPeer = (kind: Kind): Reference => (PROBED.includes(kind) ? CONSUL : EUREKA);
  const routerPeer = (kind: Kind): Reference => (PROBED.includes(kind) ? K8S : EUREKA);
  const scenario = "6 Detection";
  const figures: Figure[] = [];
  for (const kind of ["http", "grpc", "tcp", "ttl", "session"] as const) {
    const samples = kills.filter((s) => s.kind === kind);
    const c = `${caseOf(kind, "kill -9")} (${samples.length})`;
    const watcher = column(samples, (s) => s.watcherMs);
    const router = column(samples, (s) => s.routerMs);
    const picker = column(samples, (s) => s.pickerMs);
    const detail = { watcher, router, picker };
    figures.push(
      { scenario, case: c, metric: "watcher sees FAILED p50", unit: "ms", ours: watcher.p50, ceiling: bound(kind), detail },
      { scenario, case: c, metric: "watcher sees FAILED p99", unit: "ms", ours: watcher.p99, ceiling: bound(kind), peer: watcherPeer(kind), targets: targets(kind) },
      { scenario, case: c, metric: "router's list drops it p99", unit: "ms", ours: router.p99, ceiling: bound(kind), peer: routerPeer(kind), targets: targets(kind) },
      { scenario, case: c, metric: "picker's last call to it p99", unit: "ms", ours: picker.p99 },
    );
    if (watcher.missed + router.missed > 0) {
      figures.push({ scenario, case: c, metric: "not seen within the wait (watcher, router)", unit: "kills", ours: Math.max(watcher.missed, router.missed) });
    }
  }
  const stopBound = (kind: Kind): Reference | undefined =>
    kind === "session" ? { name: "HTTP/2 keepalive 10 s + 5 s", value: KEEPALIVE_BOUND_MS }
    : kind === "ttl" ? { name: "ttl + 100 ms", value: p.ttlMs + 100 }
    : kind === "tcp" ? undefined // the kernel still accepts connections for a stopped process
    : { name: "interval + timeout", value: probeBound };
  for (const kind of stopKinds) {
    const samples = stopped.samples.filter((s) => s.kind === kind);
    const c = `${caseOf(kind, "SIGSTOP")} (${samples.length})`;
    const watcher = column(samples, (s) => s.watcherMs);
    const router = column(samples, (s) => s.routerMs);
    const picker = column(samples, (s) => s.pickerMs);
    const peer = PROBED.includes(kind) ? K8S : EUREKA;
    figures.push(
      { scenario, case: c, metric: "watcher sees FAILED max", unit: "ms", ours: watcher.max, ceiling: stopBound(kind), peer, detail: { watcher, router, picker } },
      { scenario, case: c, metric: "router's list drops it max", unit: "ms", ours: router.max, ceiling: stopBound(kind), peer },
    );
    if (watcher.missed + router.missed > 0) {
      figures.push({
        scenario,
        case: c,
        metric: `not seen within ${(stopWait[kind] / 1000).toFixed(1)} s`,
        unit: "stops",
        ours: Math.max(watcher.missed, router.missed),
      });
    }
  }
  figures.push({
    scenario,
    case: `${memory.sessions.toLocaleString("en-US")} sessions, ${memory.connections} connections`,
    metric: "RSS/session stream",
    unit: "bytes",
    ours: memory.rssPerSession,
  });
  ctx.add(...figures);
  ctx.details.detection = { settings: { ...p, probeBound }, kills, stopped: stopped.samples, oddities, memory };
}

/**
 * RSS per held session: a second registry (serve's defaults, but for an
 * interval of a minute, so no instance fails for want of a session while
 * they are being opened), `sessions` session instances registered, then a
 * KeepAlive stream opened for each over `sessionConnections` connections;
 * the registry's RSS after a GC, before and after the streams, divided by
 * the sessions.
 */
async function sessionMemory(ctx: BenchContext) {
  const p = ctx.params.detection;
  const reg = await ctx.startRegistry("s6-sessions", { store: "sqlite", healthChecks: true, healthCheckInterval: 60_000 }, ["--expose-gc"]);
  const holder = BenchChild.start("s6-session-holder", "load/detect-driver.ts");
  await holder.ready;
  ctx.log(`scenario 6: ${p.sessions} session instances, then a KeepAlive stream each over ${p.sessionConnections} connections`);
  const registered = await holder.request<{ registeredMs: number }>("registerSessions", { address: reg.address, count: p.sessions }, 300_000);
  await sleep(1000);
  const before = await reg.child.request<GcResult>("gc");
  const opened = await holder.request<{ openedMs: number; failed: number }>("openSessions", { connections: p.sessionConnections }, 300_000);
  if (opened.failed > 0) throw new Error(`${opened.failed} of ${p.sessions} sessions were refused`);
  await sleep(1000);
  const after = await reg.child.request<GcResult>("gc");
  await holder.request("releaseSessions");
  await holder.stop();
  await reg.child.stop();
  return {
    sessions: p.sessions,
    connections: p.sessionConnections,
    rssPerSession: (after.rss - before.rss) / p.sessions,
    heapPerSession: (after.heapUsed - before.heapUsed) / p.sessions,
    before,
    after,
    registered,
    opened,
  };
}
