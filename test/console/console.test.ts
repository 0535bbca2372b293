import { credentials } from "@grpc/grpc-js";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { startFaultProxy } from "../support/fault-proxy.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { call, TEST_KEY, WatchCursor } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";

/**
 * The web console (issue #28) in a real browser: Debian's chromium, headless,
 * driven by puppeteer-core, against a real registry (probing every 200 ms)
 * and real /health backends, changed over gRPC as services change it. Each
 * page is saved as a screenshot under the test's temp directory
 * (`$TMPDIR/registry-console-*`, named on stdout; a failed test adds its page
 * as it was); UPDATE_SCREENSHOT=1 also writes docs/console.png.
 */

const CHROMIUM = "/usr/bin/chromium";

/**
 * Whether a browser is here: always in CI (.ci/run installs Debian's
 * chromium, and a missing one is a failure), elsewhere when it is installed,
 * saying plainly when these tests are skipped.
 */
const chromiumPresent = existsSync(CHROMIUM);
if (!chromiumPresent) {
  const ci = (process.env.CI ?? "").trim().toLowerCase();
  if (ci !== "" && !["0", "false", "no"].includes(ci)) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (see .ci/run)`);
  console.warn(`[console browser tests skipped] no ${CHROMIUM}; install Debian's chromium (apt-get install chromium) to run them`);
}

// The browser's globals, for the functions that run in the page (the project compiles without the DOM lib).
declare const document: any, location: any, localStorage: any, sessionStorage: any, innerWidth: number;
const ROOT = new URL("../../", import.meta.url);
const CHANGE_TYPES = ["registered", "removed", "health_failed", "health_passed", "draining"];

describe.skipIf(!chromiumPresent)("the web console in a real browser", () => {
  let stack: Awaited<ReturnType<typeof startStack>>;
  let grpc: RegistryServiceClient;
  let browser: Browser;
  let artifacts: string;
  const backends: HealthServer[] = [];
  /** Errors the pages reported (uncaught exceptions, console errors, CSP refusals): none is expected. */
  const pageErrors: string[] = [];

  /** A /health backend and its instance, registered over gRPC with the key. */
  async function backend(serviceType: string, metadata: Record<string, string> = {}) {
    const health = await startHealthServer();
    backends.push(health);
    const res = await call(grpc, grpc.register, { serviceType, port: health.port, host: "127.0.0.1", metadata });
    return { health, id: res.serviceId, instance: res.instance! };
  }

  async function openConsole(width = 1280, height = 800, origin = stack.httpUrl): Promise<Page> {
    const page = await browser.newPage();
    await page.setViewport({ width, height });
    page.setDefaultTimeout(5000);
    page.on("pageerror", (err) => pageErrors.push(`pageerror: ${String(err)}`));
    page.on("console", (msg) => {
      // A refused key and a refused action are answered 401/404 on purpose, and a test cuts the stream's
      // connection (RST): chromium logs those loads.
      if (msg.type() === "error" && !/status of (401|404)|ERR_CONNECTION_RESET/.test(msg.text())) pageErrors.push(`console: ${msg.text()}`);
    });
    await page.goto(`${origin}/ui/`);
    return page;
  }

  async function signIn(page: Page, key = TEST_KEY): Promise<void> {
    await page.waitForSelector("input[name=key]");
    await page.type("input[name=key]", key);
    await page.keyboard.press("Enter");
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(artifacts, `${name}.png`) as `${string}.png`, fullPage: true });
  }

  /** The revisions of the change events in the page's log, oldest first. */
  function logRevisions(page: Page): Promise<number[]> {
    return page.$$eval(
      ".log-list li",
      (items, types) =>
        items
          .filter((li) => types.includes(li.getAttribute("data-type") ?? ""))
          .map((li) => Number(li.getAttribute("data-revision")))
          .reverse(),
      CHANGE_TYPES,
    );
  }

  /** Moves within the signed-in page (a hash change: the page, and the key in its memory, stay). */
  async function go(page: Page, hash: string): Promise<void> {
    await page.evaluate((h) => {
      location.hash = h;
    }, hash);
  }

  async function live(page: Page): Promise<void> {
    await page.waitForFunction(() => document.querySelector(".status")?.getAttribute("data-state") === "live");
  }

  const serviceRow = (type: string) => `.services-table .row[data-key="${type}"]`;
  const instanceRow = (id: string) => `.instances-table .row[data-key="${id}"]`;

  beforeAll(async () => {
    artifacts = mkdtempSync(join(tmpdir(), "registry-console-"));
    console.log(`console screenshots: ${artifacts}`);
    stack = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "200", HEALTH_CHECK_TTL_MS: "500", DEREGISTER_AFTER_MS: "0", CONSOLE_SAMPLE_INTERVAL_MS: "500" });
    grpc = new RegistryServiceClient(stack.address, credentials.createInsecure());
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    });
    await backend("billing", { zone: "eu-1", tier: "web" });
    await backend("billing", { zone: "us-2", tier: "web" });
    await backend("search", { zone: "eu-1" });
  }, 30_000);

  // A failed test leaves its page open: saved as it was, for the one reading the failure.
  afterEach(async (context) => {
    const pages = (await browser.pages()).filter((p) => p.url() !== "about:blank");
    for (const [i, page] of pages.entries()) {
      if (context.task.result?.state === "fail") await screenshot(page, `failed-${context.task.name.slice(0, 40).replace(/\W+/g, "-")}-${i}`);
      await page.close();
    }
  });

  afterAll(async () => {
    await browser?.close();
    grpc?.close();
    await stack?.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it("refuses a wrong key with a clear message, and keeps nothing of it", async () => {
    const page = await openConsole();
    await signIn(page, "not-the-registration-key-0000");
    await page.waitForFunction(() => document.querySelector("#signin-error")?.textContent?.includes("The registry refused this key"), { timeout: 5000 });
    const message = await page.$eval("#signin-error", (el) => el.textContent);
    expect(message).toMatch(/^The registry refused this key: .+/);
    expect(await page.$(".shell")).toBeNull();
    await screenshot(page, "sign-in-refused");
    await page.close();
  });

  it("signs in with the key and shows the existing services, with the key in page memory only", async () => {
    const page = await openConsole();
    await signIn(page);
    await page.waitForSelector(serviceRow("billing"));
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent?.includes("live"), {}, ".status");
    const billing = await page.$eval(serviceRow("billing"), (row) => [...row.querySelectorAll(".cell")].map((c) => c.textContent?.trim()));
    expect(billing).toEqual(["billing", "2", "0", "2"]);
    expect(await page.$(serviceRow("search"))).not.toBeNull();
    const kept = await page.evaluate(() => ({ cookie: document.cookie, local: localStorage.length, session: sessionStorage.length, url: location.href }));
    expect(kept).toEqual({ cookie: "", local: 0, session: 0, url: expect.not.stringContaining(TEST_KEY) });
    await screenshot(page, "services");
    await page.close();
  });

  it("follows the registry live: a backend registered over gRPC appears within 1 s, turns unhealthy with the reason when its /health stops, and a drain confirmed in the console reaches a gRPC watcher", async () => {
    const page = await openConsole();
    await signIn(page);
    await live(page);

    const appeared = page.waitForSelector(serviceRow("checkout"), { timeout: 5000 });
    const started = Date.now();
    const checkout = await backend("checkout", { zone: "eu-1", version: "1.4.2" });
    await appeared;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await page.$eval(serviceRow("checkout"), (row) => row.classList.contains("changed"))).toBe(true);
    await page.waitForFunction((sel) => !document.querySelector(sel)?.classList.contains("changed"), { timeout: 3000 }, serviceRow("checkout"));

    // To the type's page by keyboard: its link, then Enter.
    await page.focus(`${serviceRow("checkout")} a`);
    await page.keyboard.press("Enter");
    await page.waitForSelector(instanceRow(checkout.id));
    expect(await page.$eval(instanceRow(checkout.id), (row) => row.textContent)).toContain(`127.0.0.1:${checkout.health.port}`);

    await checkout.health.stop();
    await page.waitForFunction(
      (sel) => /unhealthy/.test(document.querySelector(sel)?.querySelector(".col-health")?.textContent ?? ""),
      { timeout: 5000 },
      instanceRow(checkout.id),
    );
    expect(await page.$eval(`${instanceRow(checkout.id)} .col-health`, (c) => c.textContent)).toMatch(/unhealthy\s+.*connection refused/);
    await screenshot(page, "service-unhealthy");

    const watch = WatchCursor.open(grpc, { serviceType: "checkout" });
    await watch.take(2); // the snapshot's one instance, then SYNCED
    // Escape cancels: nothing is drained.
    await page.click(`${instanceRow(checkout.id)} .col-actions button:first-child`);
    await page.waitForSelector("dialog.confirm[open]");
    await screenshot(page, "drain-dialog");
    await page.keyboard.press("Escape");
    await page.waitForSelector("dialog.confirm:not([open])");
    // Enter confirms (the dialog's confirm button has the focus).
    await page.click(`${instanceRow(checkout.id)} .col-actions button:first-child`);
    await page.waitForSelector("dialog.confirm[open]");
    await page.keyboard.press("Enter");
    const drained: WatchInstancesResponse = (await watch.changes(1))[0]!;
    expect(drained.type).toBe(EventType.EVENT_TYPE_INSTANCE_DRAINING);
    expect(drained.instance?.id).toBe(checkout.id);
    watch.cancel();
    await page.waitForSelector("dialog.confirm:not([open])");
    await page.waitForFunction((sel) => /draining/.test(document.querySelector(`${sel} .col-draining`)?.textContent ?? ""), {}, instanceRow(checkout.id));
    await page.close();
  });

  it("shows a service's instances with address, metadata, age and last probe; sorts them by a column; filters them by a selector; charts the type and the probe lag", async () => {
    const eu = await backend("catalog", { zone: "eu-1" });
    const us = await backend("catalog", { zone: "us-2" });
    const page = await openConsole();
    await signIn(page);
    await live(page);
    await go(page, "#/service/catalog");
    await page.waitForSelector(instanceRow(eu.id));
    await page.waitForSelector(instanceRow(us.id));
    await page.waitForFunction((sel) => /ms/.test(document.querySelector(`${sel} .col-probe`)?.textContent ?? ""), {}, instanceRow(eu.id));
    const cells = await page.$eval(instanceRow(eu.id), (row) =>
      Object.fromEntries([...row.querySelectorAll(".cell")].map((c) => [/col-(\w+)/.exec(c.className)?.[1], c.textContent?.trim()])),
    );
    expect(cells).toMatchObject({ address: `127.0.0.1:${eu.instance.port}`, metadata: "zone=eu-1", age: expect.stringMatching(/^\d+s$/), probe: expect.stringMatching(/ms$/) });

    // Sorted by metadata: eu-1 first, then the other way round.
    const order = () => page.$$eval(".instances-table .spacer .row", (rows) => rows.map((r) => r.getAttribute("data-key")));
    await page.click(".instances-table [role=columnheader].col-metadata button.sort");
    await page.waitForFunction(() => document.querySelector(".instances-table [role=columnheader].col-metadata")?.getAttribute("aria-sort") === "ascending");
    expect(await order()).toEqual([eu.id, us.id]);
    await page.click(".instances-table [role=columnheader].col-metadata button.sort");
    await page.waitForFunction(() => document.querySelector(".instances-table [role=columnheader].col-metadata")?.getAttribute("aria-sort") === "descending");
    expect(await order()).toEqual([us.id, eu.id]);

    // A selector: only its zone.
    await page.type("input[name=selector]", "zone=us-2");
    await page.keyboard.press("Enter");
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll(".instances-table .spacer .row")];
      return rows.length === 1 && rows[0]?.getAttribute("data-key") === id;
    }, {}, us.id);

    // Charts: the type's healthy instances and the probe lag, drawn from the registry's samples.
    await page.waitForFunction(() => /catalog 2\b/.test(document.querySelector(".chart-box")?.getAttribute("aria-label") ?? ""), { timeout: 10_000 });
    const charts = await page.$$eval(".chart-box", (boxes) => boxes.map((b) => ({ label: b.getAttribute("aria-label"), canvas: b.querySelector("canvas") !== null })));
    expect(charts).toEqual([
      { label: expect.stringMatching(/^Healthy instances of catalog: catalog 2$/), canvas: true },
      { label: expect.stringMatching(/^Probe schedule lag p99: probe lag p99 [\d.]+ ms$/), canvas: true },
    ]);
    await screenshot(page, "service-sorted-filtered");
    await page.close();
  });

  it("shows the registry's answer when it refuses an action, and unregisters after a confirmation", async () => {
    const page = await openConsole();
    await signIn(page);
    const gone = await backend("cart");
    const kept = await backend("cart");
    await go(page, "#/service/cart");
    // Both rows in place first: a row arriving would move the other under the pointer.
    await page.waitForSelector(instanceRow(gone.id));
    await page.waitForSelector(instanceRow(kept.id));
    await page.click(`${instanceRow(gone.id)} .col-actions button.danger`);
    await page.waitForSelector("dialog.confirm[open]");
    expect(await page.$eval("dialog.confirm", (d) => d.textContent)).toContain(gone.id);
    // Someone else unregisters it first: the console's DELETE is refused.
    await call(grpc, grpc.unregister, { instanceId: gone.id });
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("dialog.confirm .error")?.textContent?.includes("The registry refused: NOT_FOUND"));
    await screenshot(page, "unregister-refused");
    await page.keyboard.press("Escape");
    await page.waitForSelector("dialog.confirm:not([open])");

    await page.click(`${instanceRow(kept.id)} .col-actions button.danger`);
    await page.waitForSelector("dialog.confirm[open]");
    await page.keyboard.press("Enter");
    await page.waitForFunction((sel) => document.querySelector(sel) === null, {}, instanceRow(kept.id));
    await expect(call(grpc, grpc.getInstance, { instanceId: kept.id })).rejects.toMatchObject({ code: 5 });
    await page.close();
  });

  it("resumes its event log after a reload with no gap and no repeat: every change a gRPC watcher saw, once", async () => {
    const page = await openConsole();
    await signIn(page);
    await live(page);
    await backend("reload", { n: "0" });
    // The page has taken every change so far and put its resume point in its URL.
    const resumeAt = stack.registry.revision;
    await page.waitForFunction((r) => new URLSearchParams(location.search).get("since") === String(r), {}, resumeAt);
    const before = await logRevisions(page);
    expect(before.at(-1)).toBe(resumeAt);
    const watch = WatchCursor.open(grpc, { sinceRevision: resumeAt, epoch: stack.registry.epoch });

    // Changes while the page reloads (its stream cut mid-flight, its memory gone).
    const reloaded = page.reload();
    const a = await backend("reload", { n: "1" });
    const b = await backend("reload", { n: "2" });
    await call(grpc, grpc.drain, { instanceId: a.id });
    const last = await call(grpc, grpc.unregister, { instanceId: b.id });
    await reloaded;

    // The key went with the page's memory: sign in again, and the log picks up after resumeAt.
    expect(await page.$eval("input[name=key]", (el) => (el as unknown as { value: string }).value)).toBe("");
    await signIn(page);
    await page.waitForFunction((r) => document.querySelector(`.log-list li[data-type="removed"][data-revision="${r}"]`) !== null, { timeout: 5000 }, last.revision);
    const after = await logRevisions(page);
    const seen: number[] = [];
    while (seen.at(-1) !== last.revision) seen.push(...(await watch.changes(1)).map((e) => e.revision));
    watch.cancel();
    expect(after).toEqual(seen);
    expect(Math.min(...after)).toBe(resumeAt + 1);
    await screenshot(page, "resumed-after-reload");
    await page.close();
  });

  it("reopens a dropped stream after its last event id, with the epoch: what changed while it was down arrives, nothing missed or repeated", async () => {
    const proxy = await startFaultProxy("127.0.0.1", stack.httpPort as number);
    try {
      const page = await openConsole(1280, 800, proxy.url);
      const watches: URL[] = [];
      page.on("request", (r) => {
        const url = new URL(r.url());
        if (url.pathname === "/watch") watches.push(url);
      });
      await signIn(page);
      await live(page);
      const before = stack.registry.revision;
      await page.waitForFunction((r) => new URLSearchParams(location.search).get("since") === String(r), {}, before);
      const watch = WatchCursor.open(grpc, { sinceRevision: before, epoch: stack.registry.epoch });

      proxy.reset(); // every connection through the proxy cut (RST), the stream's among them
      await page.waitForFunction(() => document.querySelector(".status")?.getAttribute("data-state") === "reconnecting");
      const down = await backend("dropped"); // while the page waits to reconnect
      await page.waitForFunction((r) => document.querySelector(`.log-list li[data-type="registered"][data-revision="${r}"]`) !== null, {}, down.instance.revision);
      await live(page);

      expect(watches.length).toBe(2);
      expect(watches[0]?.searchParams.has("sinceRevision")).toBe(false);
      expect(Object.fromEntries(watches[1]?.searchParams ?? [])).toEqual({ serviceType: "", sinceRevision: String(before), epoch: stack.registry.epoch });
      const seen: number[] = [];
      while (seen.at(-1) !== down.instance.revision) seen.push(...(await watch.changes(1)).map((e) => e.revision));
      watch.cancel();
      const logged = await logRevisions(page);
      expect(logged.filter((r) => r > before)).toEqual(seen);
      expect(new Set(logged).size).toBe(logged.length);
      await page.close();
    } finally {
      await proxy.close();
    }
  });

  it("is readable at 390 px wide: no horizontal scroll of the page, names and counts in view", async () => {
    const page = await openConsole(390, 844);
    await signIn(page);
    await page.waitForSelector(serviceRow("billing"));
    const layout = await page.evaluate((sel) => {
      const row = document.querySelector(sel);
      const name = row.querySelector(".type-link")!.getBoundingClientRect();
      const cells = [...row.querySelectorAll(".cell")].map((c) => c.getBoundingClientRect());
      return {
        scrollWidth: document.documentElement.scrollWidth,
        clientWidth: document.documentElement.clientWidth,
        nameVisible: name.width > 0 && name.right <= innerWidth,
        cellsInView: cells.every((c) => c.left >= 0 && c.right <= innerWidth),
      };
    }, serviceRow("billing"));
    expect(layout.scrollWidth).toBeLessThanOrEqual(layout.clientWidth);
    expect(layout).toMatchObject({ nameVisible: true, cellsInView: true });
    await screenshot(page, "services-390");
    await go(page, "#/service/billing");
    await page.waitForSelector(".instances-table .spacer .row");
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    await screenshot(page, "service-390");
    await page.close();
  });

  it("reported no page error (no exception, no refused script or style)", () => {
    expect(pageErrors).toEqual([]);
  });

  it(
    "draws a service's page while its instances change (UPDATE_SCREENSHOT=1 also writes it to docs/console.png)",
    async () => {
      const update = process.env.UPDATE_SCREENSHOT === "1";
      // For the README's picture, three chart samples (one every 10 s) make lines rather than dots.
      const samples = async (): Promise<number> =>
        ((await (await fetch(`${stack.httpUrl}/console/series`, { headers: { authorization: `Bearer ${TEST_KEY}` } })).json()) as { samples: unknown[] }).samples.length;
      while (update && (await samples()) < 3) await new Promise((resolve) => setTimeout(resolve, 500));
      const page = await openConsole(1280, 800);
      await signIn(page);
      await live(page);
      await go(page, "#/service/billing");
      await page.waitForSelector(".instances-table .spacer .row");
      const added = await backend("billing", { zone: "eu-2", tier: "web", version: "2.1.0" });
      const failing = await backend("billing", { zone: "us-2", tier: "batch", version: "2.1.0" });
      await failing.health.stop();
      await page.waitForFunction((sel) => /unhealthy/.test(document.querySelector(sel)?.textContent ?? ""), { timeout: 5000 }, instanceRow(failing.id));
      await call(grpc, grpc.drain, { instanceId: added.id });
      await page.waitForFunction((sel) => /draining/.test(document.querySelector(`${sel} .col-draining`)?.textContent ?? ""), {}, instanceRow(added.id));
      // The probe details of the new rows, fetched soon after their changes.
      await page.waitForFunction((sel) => /ms/.test(document.querySelector(`${sel} .col-probe`)?.textContent ?? ""), {}, instanceRow(failing.id));
      const target = update ? new URL("docs/console.png", ROOT).pathname : join(artifacts, "service-page-changing.png");
      mkdirSync(dirname(target), { recursive: true });
      await page.screenshot({ path: target as `${string}.png` });
      await page.close();
    },
    60_000,
  );
});

describe.skipIf(!chromiumPresent)("the web console with 1,000 service types and 10,000 instances", () => {
  let stack: Awaited<ReturnType<typeof startStack>>;
  let browser: Browser;
  const TYPES = 1000;
  const INSTANCES = 10_000;
  /** Rows in the DOM beyond this would mean the list is not virtualized (a view holds ~20). */
  const MAX_ROWS = 80;

  beforeAll(async () => {
    stack = await startStack();
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"] });
    // In-process (the subject here is the page, not Register): 999 types of one instance, and "big" with the rest.
    const inputs = Array.from({ length: INSTANCES }, (_, i) => ({
      serviceType: i < TYPES - 1 ? `svc-${String(i).padStart(4, "0")}` : "big",
      host: "127.0.0.1",
      port: 10_000 + i,
      metadata: { zone: i % 2 === 0 ? "eu-1" : "us-2" },
    }));
    for (let i = 0; i < inputs.length; i += 500) await Promise.all(inputs.slice(i, i + 500).map((input) => stack.registry.register(input)));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it("lists every type and every instance of the largest, rendering only the rows in view", async () => {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(`${stack.httpUrl}/ui/`);
    await page.type("input[name=key]", TEST_KEY);
    const started = Date.now();
    await page.keyboard.press("Enter");
    await page.waitForFunction((n) => document.querySelector(".summary")?.textContent?.startsWith(`${n} types, ${10_000} of ${10_000}`), {}, TYPES);
    await page.waitForFunction(() => document.querySelector(".status")?.getAttribute("data-state") === "live");
    const shown = Date.now() - started;
    console.log(`1,000 types, 10,000 instances: signed in to a live list in ${shown} ms`);
    expect(shown).toBeLessThan(10_000);
    expect((await page.$$(".services-table .spacer .row")).length).toBeLessThan(MAX_ROWS);

    // The end of the list is one scroll away, and the filter narrows it.
    await page.$eval(".services-table .vbody", (el) => el.scrollTo(0, el.scrollHeight));
    await page.waitForSelector('.services-table .row[data-key="svc-0998"]');
    await page.type("input[type=search]", "svc-09");
    await page.waitForFunction(() => document.querySelector(".toolbar")?.textContent?.includes("99 shown"));
    expect(await page.$eval(".services-table .spacer .row", (row) => row.getAttribute("data-key"))).toBe("svc-0900");

    await page.evaluate(() => {
      location.hash = "#/service/big";
    });
    await page.waitForFunction((n) => document.querySelector(".summary")?.textContent?.startsWith(`${n} of ${n} instances healthy`), {}, INSTANCES - TYPES + 1);
    expect((await page.$$(".instances-table .spacer .row")).length).toBeLessThan(MAX_ROWS);
    // Sorting 9,001 rows by age, newest first, is one click (twice: ascending, then descending).
    const sortStarted = Date.now();
    await page.click('.instances-table [role="columnheader"].col-age button');
    await page.click('.instances-table [role="columnheader"].col-age button');
    await page.waitForFunction(() => document.querySelector('.instances-table [role="columnheader"].col-age')?.getAttribute("aria-sort") === "descending");
    console.log(`sorted 9,001 instances twice in ${Date.now() - sortStarted} ms`);

    // Live changes to a large type: 100 unregistered at once show within a second or two.
    const big = stack.registry.getByType("big", { includeUnhealthy: true }).instances.slice(0, 100);
    await Promise.all(big.map((i) => stack.registry.unregister(i.id)));
    await page.waitForFunction((n) => document.querySelector(".summary")?.textContent?.startsWith(`${n} of ${n} instances healthy`), { timeout: 3000 }, INSTANCES - TYPES + 1 - 100);
    await page.close();
  }, 60_000);
});
