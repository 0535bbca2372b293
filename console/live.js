// The live feed: GET /watch (every service type) read with fetch, so the
// Authorization header can be sent (EventSource cannot send one), parsed as
// server-sent events. The event id is the registry's revision: a dropped
// stream is reopened from the last id seen, with the epoch, so no change is
// missed or repeated, exactly as a gRPC watcher resumes.

/** No byte (event or `: keepalive`, every ~15 s) for this long: the stream is dead, reopen it. */
const SILENCE_MS = 45_000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15_000];

/**
 * One resumable watch of every type.
 *
 * @example
 * const stream = new WatchStream({ api, from: { revision: 0, epoch: "" }, onEvent, onStatus });
 * stream.start();
 * // later: stream.stop();
 */
export class WatchStream {
  /**
   * @param {{api, from: {revision: number, epoch: string}, onEvent: (e: {type: string, revision: number, data: any}) => void,
   *          onStatus: (s: {state: string, detail?: string}) => void}} options
   */
  constructor({ api, from, onEvent, onStatus }) {
    this.api = api;
    this.position = { revision: from.revision, epoch: from.epoch };
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.controller = undefined;
    this.stopped = false;
    this.failures = 0;
  }

  /** Opens the stream, and keeps it open until `stop()` or until the key is refused. */
  start() {
    this.run().catch((err) => this.onStatus({ state: "stopped", detail: String(err && err.message) }));
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  /** The URL that resumes after the last event seen (or asks for a snapshot when none was). */
  url() {
    const params = new URLSearchParams({ serviceType: "" });
    if (this.position.revision > 0) {
      params.set("sinceRevision", String(this.position.revision));
      params.set("epoch", this.position.epoch);
    }
    return `/watch?${params}`;
  }

  async run() {
    while (!this.stopped) {
      const resuming = this.position.revision > 0;
      this.onStatus({ state: "connecting", detail: resuming ? `resuming after revision ${this.position.revision}` : "" });
      let refused;
      try {
        await this.readOnce(resuming);
      } catch (err) {
        if (this.stopped) return;
        if (err && (err.status === 401 || err.status === 403)) refused = err;
        else if (err && err.name !== "AbortError") this.lastError = err.message;
      }
      if (this.stopped) return;
      if (refused) {
        this.onStatus({ state: "refused", detail: refused.message });
        return;
      }
      const wait = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)] * (0.75 + Math.random() * 0.5);
      this.failures++;
      this.onStatus({ state: "reconnecting", detail: this.lastError ?? "the stream ended", retryAt: Date.now() + wait });
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /** Reads one HTTP response to its end (or its silence). */
  async readOnce(resuming) {
    const controller = new AbortController();
    this.controller = controller;
    let silence;
    const heard = () => {
      clearTimeout(silence);
      silence = setTimeout(() => {
        this.lastError = `nothing heard for ${SILENCE_MS / 1000} s`;
        controller.abort();
      }, SILENCE_MS);
    };
    heard();
    try {
      const res = await this.api.stream(this.url(), controller.signal);
      this.lastError = undefined;
      // Without a resume point the stream starts with a snapshot: what the page held is replaced.
      this.onEvent({ type: "open", revision: this.position.revision, data: { resuming } });
      this.onStatus({ state: resuming ? "live" : "syncing", detail: resuming ? `resumed after revision ${this.position.revision}` : "" });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        heard();
        const blocks = (buffer + value).split(/\r?\n\r?\n/);
        buffer = blocks.pop();
        for (const block of blocks) this.dispatch(block);
      }
    } finally {
      clearTimeout(silence);
    }
  }

  /** One event block: `id:`, `event:`, `data:` lines; `:` lines are comments (keepalives). */
  dispatch(block) {
    if (this.stopped) return; // the rest of a chunk read before stop()
    let id;
    let type = "message";
    const data = [];
    for (const raw of block.split("\n")) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return;
    let payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (type === "error") {
      // The server ends the stream after this: say why, then resume from the last id.
      this.lastError = `${payload.code ?? "ERROR"}: ${payload.message ?? "the stream failed"}`;
      return;
    }
    const revision = id !== undefined && id !== "" ? Number(id) : Number(payload.revision ?? 0);
    this.onEvent({ type, revision, data: payload });
    // Remembered after the event is applied, so a resume never skips one. Snapshot events carry
    // their instance's revision, not a point in the history: a stream cut mid-snapshot starts over.
    // After a reset the snapshot that follows is the resume point's only base until its `synced`.
    if (type === "reset") this.position.revision = 0;
    else if (id !== undefined && id !== "" && !payload.snapshot) this.position.revision = revision;
    if (typeof payload.epoch === "string" && payload.epoch !== "") this.position.epoch = payload.epoch;
    if (type === "synced") this.onStatus({ state: "live", detail: "" });
    this.failures = 0;
  }
}

