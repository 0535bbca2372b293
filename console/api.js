// Calls to the registry's HTTP surface with the signed-in key. The key lives
// only in the closure of the client made at sign-in: never in a cookie, in
// web storage or in the URL.

/** A refused or failed call: the HTTP status and the server's `{error: {code, message}}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }

  /** The key itself was refused (wrong, revoked): the page must ask for another. */
  get unauthenticated() {
    return this.status === 401;
  }
}

/**
 * A client for one registration key.
 *
 * @example
 * const api = createApi(key);
 * const { services, revision } = await api.get("/services");
 */
export function createApi(key) {
  const authorization = `Bearer ${key}`;

  async function request(method, path, { signal } = {}) {
    let res;
    try {
      res = await fetch(path, { method, headers: { authorization, accept: "application/json" }, signal, cache: "no-store" });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "UNAVAILABLE", `the registry could not be reached (${err.message})`);
    }
    const text = await res.text();
    let body;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch {
      body = null;
    }
    if (!res.ok) {
      const error = body && body.error;
      throw new ApiError(res.status, error ? error.code : `HTTP_${res.status}`, error ? error.message : `HTTP ${res.status} ${res.statusText}`);
    }
    return body;
  }

  return {
    get: (path, options) => request("GET", path, options),
    post: (path, options) => request("POST", path, options),
    del: (path, options) => request("DELETE", path, options),
    /** A streaming GET (server-sent events): the raw response, its body still unread. */
    async stream(path, signal) {
      const res = await fetch(path, { headers: { authorization, accept: "text/event-stream" }, signal, cache: "no-store" });
      if (!res.ok) {
        let error;
        try {
          error = (await res.json()).error;
        } catch {
          error = undefined;
        }
        throw new ApiError(res.status, error ? error.code : `HTTP_${res.status}`, error ? error.message : `HTTP ${res.status}`);
      }
      return res;
    },
  };
}
