// The console: sign-in, then the services and service pages fed live by one
// watch stream, the event log, and the confirmation of actions. The
// registration key is held only in the API client's closure (page memory):
// a reload asks for it again. The resume point (revision and epoch, which are
// not secret) is kept in the URL, so a reloaded page resumes its log with no gap.

import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, createApi } from "./api.js";
import { useSeries } from "./charts.js";
import { ConfirmDialog } from "./confirm-dialog.js";
import { EventLog } from "./event-log.js";
import { html } from "./html.js";
import { WatchStream } from "./live.js";
import { ServiceView } from "./service-view.js";
import { ServicesView } from "./services-view.js";
import { ConsoleStore, useStore } from "./store.js";

const SUMMARY_REFRESH_MS = 10_000;

function SignIn({ onSignedIn, notice }) {
  const [key, setKey] = useState("");
  const [state, setState] = useState({ pending: false, error: notice });
  const submit = async (e) => {
    e.preventDefault();
    if (key === "") return setState({ pending: false, error: "Enter a registration key." });
    setState({ pending: true, error: undefined });
    const api = createApi(key);
    try {
      const { services } = await api.get("/services");
      setKey("");
      onSignedIn({ api, services });
    } catch (err) {
      const refused = err instanceof ApiError && (err.status === 401 || err.status === 403);
      setState({ pending: false, error: refused ? `The registry refused this key: ${err.message}` : `Could not sign in: ${err.message}` });
    }
  };
  return html`<main class="signin">
    <form onSubmit=${submit} class="card" aria-labelledby="signin-title">
      <h1 id="signin-title">service-registry</h1>
      <p>Sign in with a registration key. The key stays in this page's memory: it is not stored, and a reload asks for it again.</p>
      <label class="field block">Registration key
        <input type="password" name="key" autocomplete="off" spellcheck="false" value=${key} autofocus
          onInput=${(e) => setKey(e.currentTarget.value)} aria-describedby="signin-error" aria-invalid=${state.error ? "true" : undefined} />
      </label>
      <button type="submit" class="primary" disabled=${state.pending}>${state.pending ? "Signing in…" : "Sign in"}</button>
      <p id="signin-error" class="error" role="alert">${state.error ?? ""}</p>
    </form>
  </main>`;
}

/** `#/` (services) or `#/service/<type>?selector=k=v,...`. */
function parseRoute(hash) {
  const match = /^#\/service\/([^?]+)(?:\?(.*))?$/.exec(hash);
  if (!match) return { view: "services" };
  let type;
  try {
    type = decodeURIComponent(match[1]);
  } catch {
    return { view: "services" };
  }
  return { view: "service", type, selector: new URLSearchParams(match[2] ?? "").get("selector") ?? "" };
}

function useRoute() {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", update);
    update(); // a change between the first render and this effect
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}

/** The resume point a reloaded page left in its URL (`?since=R&epoch=E`), if any. */
function resumePointInUrl() {
  const params = new URLSearchParams(location.search);
  const revision = Number(params.get("since"));
  return Number.isSafeInteger(revision) && revision > 0 ? { revision, epoch: params.get("epoch") ?? "" } : undefined;
}

function writeResumePoint(position) {
  const search = position && position.revision > 0 ? `?${new URLSearchParams({ since: String(position.revision), epoch: position.epoch })}` : "";
  if (search !== location.search) history.replaceState(history.state, "", `${location.pathname}${search}${location.hash}`);
}

/**
 * Follows the registry: one watch stream of every type. A page with a resume
 * point in its URL first loads the current state (a snapshot, on a stream
 * closed at its `synced`), then resumes after the URL's revision: the changes
 * it missed while reloading go to the log, those after the snapshot to the
 * state too.
 */
function useLive(api, store, onRefused) {
  useEffect(() => {
    let stopped = false;
    let stream;
    let loader;
    const onStatus = (status) => {
      store.setStatus(status);
      if (status.state === "refused") onRefused(`The registry refused this key: ${status.detail}`);
    };
    const follow = (from) => {
      stream = new WatchStream({ api, from, onEvent: (e) => store.onEvent(e), onStatus });
      stream.start();
    };
    const resume = resumePointInUrl();
    if (resume) {
      store.note(`page reloaded: resuming after revision ${resume.revision}`);
      let loaded = false;
      loader = new WatchStream({
        api,
        from: { revision: 0, epoch: "" },
        onEvent: (e) => {
          if (loaded) return;
          store.onEvent(e);
          if (e.type !== "synced") return;
          loaded = true;
          loader.stop();
          store.appliedThrough = e.revision;
          if (!stopped) follow(resume);
        },
        onStatus: (status) => (status.state === "refused" ? onStatus(status) : loaded || store.setStatus({ ...status, state: "syncing" })),
      });
      loader.start();
    } else follow({ revision: 0, epoch: "" });
    const writer = setInterval(() => stream && writeResumePoint(stream.position), 250);
    return () => {
      stopped = true;
      clearInterval(writer);
      loader?.stop();
      stream?.stop();
    };
  }, [api, store]);
}

const STATUS_TEXT = { connecting: "connecting…", syncing: "loading…", live: "live", reconnecting: "reconnecting…", refused: "refused", stopped: "stopped" };

function Console({ session, onSignOut }) {
  const { api } = session;
  const store = useMemo(() => {
    const s = new ConsoleStore();
    s.setSummaries(session.services);
    return s;
  }, [session]);
  const version = useStore(store);
  const route = useRoute();
  const series = useSeries(api, route.view === "service" ? route.type : undefined);
  const [action, setAction] = useState(undefined);
  useLive(api, store, onSignOut);
  useEffect(() => {
    const timer = setInterval(() => api.get("/services").then(({ services }) => store.setSummaries(services), () => undefined), SUMMARY_REFRESH_MS);
    return () => clearInterval(timer);
  }, [api, store]);
  const navigate = (type, selector) => {
    location.hash = `#/service/${encodeURIComponent(type)}${selector ? `?${new URLSearchParams({ selector })}` : ""}`;
  };
  const run = async ({ kind, instance }) => {
    const path = `/service/${encodeURIComponent(instance.id)}`;
    if (kind === "drain") await api.post(`${path}/drain`);
    else await api.del(path);
  };
  const { status } = store;
  return html`<div class="shell">
    <header class="top">
      <h1><a href="#/">service-registry</a></h1>
      <p class="status" role="status" data-state=${status.state}>
        <span class="dot" aria-hidden="true"></span>
        ${STATUS_TEXT[status.state] ?? status.state}${status.state === "live" && store.revision ? ` · revision ${store.revision}` : ""}
        ${status.detail ? html`<span class="muted small"> ${status.detail}</span>` : null}
      </p>
      <button type="button" class="link" onClick=${() => onSignOut(undefined)}>Sign out</button>
    </header>
    <main class="main">
      ${route.view === "service"
        ? html`<${ServiceView} api=${api} store=${store} version=${version} type=${route.type} selector=${route.selector}
            series=${series} onAction=${setAction} navigate=${navigate} />`
        : html`<${ServicesView} store=${store} version=${version} series=${series} />`}
    </main>
    <${EventLog} store=${store} />
    <${ConfirmDialog} action=${action} run=${run} onClose=${() => setAction(undefined)} />
  </div>`;
}

function App() {
  const [session, setSession] = useState(undefined);
  const [notice, setNotice] = useState(undefined);
  if (!session) return html`<${SignIn} onSignedIn=${setSession} notice=${notice} />`;
  return html`<${Console}
    session=${session}
    onSignOut=${(message) => {
      writeResumePoint(undefined);
      setNotice(message);
      setSession(undefined);
    }} />`;
}

render(html`<${App} />`, document.getElementById("app"));
