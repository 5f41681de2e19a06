// The console's shell: the API key, the navigation, the index shared by the views, and the
// live event stream that refreshes them.

import { render } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";

import { ApiError, api, clearKey, followEvents, get, getKey, onUnauthorized, setKey } from "./api.js";
import { ConfirmHost, ErrorNote, html, liveEvents } from "./ui.js";
import { IndexesView } from "./indexes.js";
import { UploadView } from "./upload.js";
import { DocumentsView } from "./documents.js";
import { SearchView } from "./search.js";
import { StatusView } from "./status.js";
import { JobsView } from "./jobs.js";

const VIEWS = [
  { route: "indexes", label: "Indexes", view: IndexesView },
  { route: "upload", label: "Upload", view: UploadView },
  { route: "documents", label: "Documents", view: DocumentsView },
  { route: "search", label: "Search", view: SearchView },
  { route: "status", label: "Status", view: StatusView },
  { route: "jobs", label: "Jobs", view: JobsView },
];

function currentRoute() {
  const route = location.hash.replace(/^#\/?/, "").split("?")[0];
  return VIEWS.some((v) => v.route === route) ? route : "indexes";
}

/** Asks for the key; checks it with one read before keeping it. */
function KeyGate({ refusal, onKey }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    const key = value.trim();
    if (!key) return;
    setBusy(true);
    setError(null);
    try {
      // The key is sent explicitly: it is kept only once the service accepts it.
      await api("GET", "v1/indexes", { query: { per_page: 1 }, key });
      setKey(key);
      onKey();
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }

  const shown = error || refusal;
  return html`<div class="gate">
    <form class="card gate-card" onSubmit=${submit}>
      <h1>RAG service console</h1>
      <p class="muted">Enter an API key of this service. It is kept in this tab only (sessionStorage) and sent
        as <code>X-API-Key</code> with each request.</p>
      ${shown && shown.status === 401
        ? html`<div class="note error" role="alert" id="key-refused">
            <strong>The service refused this API key.</strong> ${shown.message}${" "}
            <code class="error-code">${shown.code}</code>. Enter a valid key.
          </div>`
        : html`<${ErrorNote} error=${shown} />`}
      <label>API key
        <input type="password" name="api-key" autocomplete="off" value=${value} autofocus
          onInput=${(e) => setValue(e.currentTarget.value)} placeholder="rag_…" />
      </label>
      <button class="primary" type="submit" disabled=${busy}>${busy ? "Checking…" : "Use this key"}</button>
    </form>
  </div>`;
}

function App() {
  const [hasKey, setHasKey] = useState(Boolean(getKey()));
  const [refusal, setRefusal] = useState(null);
  const [route, setRoute] = useState(currentRoute());
  const [indexes, setIndexes] = useState([]);
  const [indexesError, setIndexesError] = useState(null);
  const [indexId, setIndexId] = useState(null);
  const [meta, setMeta] = useState(null);
  const [live, setLive] = useState("off");

  useEffect(() => {
    onUnauthorized((error) => {
      clearKey();
      setRefusal(error);
      setHasKey(false);
    });
    const onHash = () => setRoute(currentRoute());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  const indexesGeneration = useRef(0);
  const reloadIndexes = useCallback(async () => {
    const mine = ++indexesGeneration.current;
    try {
      const page = await get("v1/indexes", { per_page: 500 });
      if (mine !== indexesGeneration.current) return; // a later reload is on its way: it wins
      setIndexes(page.items);
      setIndexesError(null);
      setIndexId((chosen) => (page.items.some((i) => i.id === chosen) ? chosen : page.items[0]?.id ?? null));
    } catch (exc) {
      if (mine === indexesGeneration.current) setIndexesError(exc);
    }
  }, []);

  useEffect(() => {
    if (!hasKey) return undefined;
    reloadIndexes();
    // Tiers, boundaries and models for the forms; the Status view reads its own copy.
    get("v1/rag/status").then(setMeta, () => setMeta(null));
    const stop = followEvents(
      (event) => {
        liveEvents.dispatchEvent(new CustomEvent("rag-event", { detail: event }));
        if (event.type.startsWith("document.") || event.type === "index.reindexed") reloadIndexes();
      },
      setLive,
    );
    return stop;
  }, [hasKey]);

  if (!hasKey) {
    return html`<${KeyGate} refusal=${refusal} onKey=${() => { setRefusal(null); setHasKey(true); }} />`;
  }
  const View = VIEWS.find((v) => v.route === route).view;
  const signOut = () => {
    clearKey();
    setRefusal(null);
    setHasKey(false);
  };
  return html`<div class="shell">
    <nav class="sidebar" aria-label="Console">
      <div class="brand">RAG console</div>
      <ul>
        ${VIEWS.map((v) => html`<li key=${v.route}>
          <a href=${`#/${v.route}`} class=${v.route === route ? "active" : ""}
             aria-current=${v.route === route ? "page" : undefined}>${v.label}</a>
        </li>`)}
      </ul>
      <div class="sidebar-foot">
        <span class=${`live live-${live}`} title="GET /v1/events">events: ${live}</span>
        <button type="button" class="link" onClick=${signOut}>Forget key</button>
      </div>
    </nav>
    <main class="content">
      <${ErrorNote} error=${indexesError} title="Indexes could not be listed" />
      <${View} indexes=${indexes} indexId=${indexId} setIndexId=${setIndexId}
        reloadIndexes=${reloadIndexes} meta=${meta} />
    </main>
    <${ConfirmHost} />
  </div>`;
}

window.addEventListener("unhandledrejection", (event) => {
  // A refused key is handled by the key gate; anything else is a bug worth seeing in the console.
  if (event.reason instanceof ApiError && event.reason.status === 401) event.preventDefault();
});

render(html`<${App} />`, document.getElementById("app"));
