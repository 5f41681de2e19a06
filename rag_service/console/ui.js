// Shared pieces of the views. Everything the API sends is rendered as text through
// preact (which escapes it); nothing here sets innerHTML.

import { h } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

/** Live refreshes: app.js re-dispatches every event of GET /v1/events here. */
export const liveEvents = new EventTarget();

/** Run `reload` whenever an event whose type starts with one of `prefixes` arrives. */
export function useLiveRefresh(prefixes, reload) {
  const latest = useRef(reload);
  latest.current = reload;
  useEffect(() => {
    const listener = (event) => {
      if (prefixes.some((prefix) => event.detail.type.startsWith(prefix))) latest.current();
    };
    liveEvents.addEventListener("rag-event", listener);
    return () => liveEvents.removeEventListener("rag-event", listener);
  }, [prefixes.join(",")]);
}

/**
 * {data, error, loading, reload} of an async loader, re-run when deps change. A change of deps
 * (another index, say) drops the old data at once, so nothing of the previous selection stays
 * on screen to be clicked; a reload keeps it until the new answer arrives. Only the latest
 * call's answer is kept.
 */
export function useLoad(loader, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const load = useCallback((fresh) => {
    const mine = ++generation.current;
    setState((old) => (fresh ? { data: null, error: null, loading: true } : { ...old, loading: true }));
    Promise.resolve()
      .then(loader)
      .then(
        (data) => mine === generation.current && setState({ data, error: null, loading: false }),
        (error) => mine === generation.current && setState({ data: null, error, loading: false }),
      );
  }, deps);
  useEffect(() => load(true), [load]);
  const reload = useCallback(() => load(false), [load]);
  return { ...state, reload };
}

/** An API error as a person reads it: the message, then the code (and field, status). */
export function ErrorNote({ error, title }) {
  if (!error) return null;
  const body = error.body || {};
  return html`<div class="note error" role="alert">
    ${title && html`<strong>${title}: </strong>`}
    <span class="error-message">${error.message}</span>
    ${error.code && html` <code class="error-code">${error.code}</code>`}
    ${body.field && html` <span class="muted">field ${body.field}</span>`}
    ${error.status ? html` <span class="muted">HTTP ${error.status}</span>` : null}
  </div>`;
}

export function Notice({ children, kind = "ok" }) {
  return children ? html`<div class=${`note ${kind}`} role="status">${children}</div>` : null;
}

/** A state word (live, ready, failed, planned ...) in its colour. */
export function Badge({ state, label }) {
  const word = String(state ?? "none");
  return html`<span class=${`badge badge-${word.replace(/[^a-z_]/gi, "")}`}>${label ?? word.replaceAll("_", " ")}</span>`;
}

export function Json({ value }) {
  return html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;
}

export function Progress({ value, label }) {
  const percent = Math.max(0, Math.min(100, Math.round(value)));
  return html`<div class="progress" role="progressbar" aria-valuenow=${percent} aria-valuemin="0" aria-valuemax="100"
      title=${label ?? `${percent}%`}>
    <div class="progress-bar" style=${{ width: `${percent}%` }}></div>
    <span class="progress-label">${label ?? `${percent}%`}</span>
  </div>`;
}

/**
 * A search highlight: the API marks matched words with <em>…</em> inside raw chunk text.
 * The text is split on those two markers and every piece rendered as text, so a chunk that
 * itself contains markup shows it literally instead of running it.
 */
export function Highlighted({ snippet }) {
  const pieces = String(snippet).split(/(<em>|<\/em>)/);
  const out = [];
  let marked = false;
  pieces.forEach((piece, i) => {
    if (piece === "<em>") marked = true;
    else if (piece === "</em>") marked = false;
    else if (piece) out.push(marked ? html`<mark key=${i}>${piece}</mark>` : piece);
  });
  return html`<span class="highlight">${out}</span>`;
}

let confirmHost = null;

/** A modal confirmation; resolves true when the person confirms. */
export function confirmAction({ title, body, confirmLabel = "Confirm", danger = true }) {
  return new Promise((resolve) => {
    if (!confirmHost) resolve(window.confirm(`${title}\n\n${body}`));
    else confirmHost({ title, body, confirmLabel, danger, resolve });
  });
}

export function ConfirmHost() {
  const [request, setRequest] = useState(null);
  const dialog = useRef(null);
  useEffect(() => {
    confirmHost = setRequest;
    return () => (confirmHost = null);
  }, []);
  useEffect(() => {
    if (request && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [request]);
  const answer = (value) => {
    dialog.current?.close();
    request?.resolve(value);
    setRequest(null);
  };
  if (!request) return null;
  return html`<dialog ref=${dialog} class="confirm" onCancel=${() => answer(false)}>
    <h3>${request.title}</h3>
    <p>${request.body}</p>
    <div class="actions">
      <button type="button" class="secondary" onClick=${() => answer(false)}>Cancel</button>
      <button type="button" class=${request.danger ? "danger" : "primary"} onClick=${() => answer(true)}>
        ${request.confirmLabel}
      </button>
    </div>
  </dialog>`;
}

/** Pick one index; the choice is shared by the upload, documents, search and jobs views. */
export function IndexPicker({ indexes, indexId, setIndexId, label = "Index" }) {
  if (!indexes.length) return html`<p class="muted">No index yet: create one under Indexes.</p>`;
  return html`<label class="inline">${label}
    <select name="index" value=${indexId || ""} onChange=${(e) => setIndexId(e.currentTarget.value)}>
      ${indexes.map((index) => html`<option key=${index.id} value=${index.id}>${index.name}</option>`)}
    </select>
  </label>`;
}

export function fmtTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fmtScore(value) {
  return typeof value === "number" ? value.toFixed(4) : "—";
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : "—");

/** Parse a JSON textarea: {value} or {error} naming the field, checked before sending. */
export function parseJsonField(text, field, { object = true } = {}) {
  if (!text || !text.trim()) return { value: undefined };
  try {
    const value = JSON.parse(text);
    if (object && (value === null || typeof value !== "object" || Array.isArray(value))) {
      return { error: { message: `${field} must be a JSON object`, code: "invalid_json", body: { field } } };
    }
    return { value };
  } catch (exc) {
    return { error: { message: `${field} is not valid JSON: ${exc.message}`, code: "invalid_json", body: { field } } };
  }
}
