// The console's only way to the service: the public HTTP API under /v1, same origin,
// with the person's API key. The key lives in sessionStorage (gone when the tab closes),
// never in localStorage or a cookie.

const KEY_NAME = "rag-console-api-key";
// The console is served at <root>/console/, the API at <root>/v1/ (works behind a path prefix).
const API_ROOT = new URL("../", document.baseURI);

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
}

/** An answer of the service in its error shape {"error", "code", "message", ...detail}. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    const message = (body && body.message) || fallback || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = (body && (body.code || body.error)) || (status ? `http_${status}` : "network_error");
    this.body = body || {};
  }
}

let unauthorizedHandler = () => {};

/** Called with the ApiError of any 401: the key is wrong, revoked or missing. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function refused(error) {
  if (error.status === 401) unauthorizedHandler(error);
  return error;
}

export function apiUrl(path, query) {
  const url = new URL(path.replace(/^\//, ""), API_ROOT);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

/** A path segment: ids and names (a document name may hold any character but "/"). */
export const seg = (value) => encodeURIComponent(String(value));

function parseBody(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function api(method, path, { json, query, headers, key } = {}) {
  const sent = { "X-API-Key": key ?? getKey() ?? "", ...(headers || {}) };
  if (json !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method,
      headers: sent,
      body: json !== undefined ? JSON.stringify(json) : undefined,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (exc) {
    throw new ApiError(0, null, `the service did not answer (${exc.message})`);
  }
  const text = await response.text();
  const body = parseBody(text);
  if (!response.ok) throw refused(new ApiError(response.status, body, text.slice(0, 300)));
  return body;
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, json, query) => api("POST", path, { json, query });
export const del = (path, query) => api("DELETE", path, { query });

/**
 * One file to POST /v1/indexes/{id}/documents with XMLHttpRequest, whose upload events
 * report progress (fetch has none). Resolves {status, body}; rejects with ApiError.
 */
export function uploadFile(indexId, file, { metadata, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    if (metadata) form.append("metadata", metadata);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl(`v1/indexes/${seg(indexId)}/documents`));
    xhr.setRequestHeader("X-API-Key", getKey() ?? "");
    xhr.responseType = "text";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      const body = parseBody(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300) resolve({ status: xhr.status, body });
      else reject(refused(new ApiError(xhr.status, body, xhr.responseText.slice(0, 300))));
    };
    xhr.onerror = () => reject(new ApiError(0, null, "the upload was interrupted (network error)"));
    xhr.send(form);
  });
}

/** Parse one Server-Sent Events block into {type, id, data}; null for comments only. */
function parseEvent(block) {
  const event = { type: "message", id: null, data: [] };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "id") event.id = value;
    else if (field === "data") event.data.push(value);
  }
  if (!event.data.length) return null;
  return { ...event, data: parseBody(event.data.join("\n")) };
}

/**
 * Follow GET /v1/events. EventSource cannot send the X-API-Key header, so this reads the
 * stream with fetch; it reconnects with Last-Event-ID (nothing is missed in between) and
 * reports "live", "reconnecting" or "off" through onState. Returns a function that stops it.
 */
export function followEvents(onEvent, onState) {
  const controller = new AbortController();
  let lastId = null;
  let stopped = false;

  async function readOnce() {
    const headers = { "X-API-Key": getKey() ?? "", Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    const response = await fetch(apiUrl("v1/events"), { headers, signal: controller.signal, cache: "no-store" });
    if (!response.ok) {
      const error = refused(new ApiError(response.status, parseBody(await response.text())));
      throw error;
    }
    onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const event = parseEvent(block);
        if (event) {
          if (event.id) lastId = event.id;
          onEvent(event);
        }
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await readOnce();
      } catch (error) {
        if (stopped) return;
        if (error instanceof ApiError && error.status === 401) {
          onState("off");
          return;
        }
      }
      if (stopped) return;
      onState("reconnecting");
      await new Promise((resume) => setTimeout(resume, 3000));
    }
  })();

  return () => {
    stopped = true;
    controller.abort();
  };
}
