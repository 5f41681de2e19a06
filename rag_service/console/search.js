// Search playground: every knob of POST /v1/search, every hit with its score, ranks,
// highlighted passage, version and provenance, and the request's evidence record.

import { useState } from "preact/hooks";

import { get, post, seg } from "./api.js";
import { ErrorNote, Highlighted, Json, fmtScore, html, parseJsonField } from "./ui.js";

const FALLBACK_BOUNDARIES = ["computer", "account_supercomputer_sync", "private_supercomputer", "global_public_only"];

function numberOrUndefined(text) {
  return String(text).trim() === "" ? undefined : Number(text);
}

/** The request body from the form; {error} when a field can't be sent as it is. */
export function searchBody(form, indexIds) {
  const filters = parseJsonField(form.filters, "filters");
  if (filters.error) return { error: filters.error };
  const body = { query: form.query, mode: form.mode, result_type: form.result_type, top_k: Number(form.top_k) };
  if (filters.value) body.filters = filters.value;
  const dense = numberOrUndefined(form.dense_weight);
  const lexical = numberOrUndefined(form.lexical_weight);
  if (dense !== undefined || lexical !== undefined) body.fusion_weights = [dense ?? 1, lexical ?? 1];
  for (const name of ["rrf_k", "as_of_version"]) {
    const value = numberOrUndefined(form[name]);
    if (value !== undefined) body[name] = value;
  }
  // Document search knobs: sent only when chosen, so the index's or the service's defaults apply.
  if (form.fusion) body.fusion = form.fusion;
  if (form.prf) body.prf = form.prf === "on";
  if (form.lexical_unit) body.lexical_unit = form.lexical_unit;
  if (form.include_history) body.include_history = true;
  if (form.data_boundary) body.data_boundary = form.data_boundary;
  if (form.account_id.trim()) body.account_id = form.account_id.trim();
  if (indexIds.length) body.index_ids = indexIds;
  return { body };
}

function Rank({ value }) {
  return value === null || value === undefined ? html`<span class="muted">—</span>` : html`#${value}`;
}

function Provenance({ hit }) {
  const metadata = Object.entries(hit.metadata || {});
  return html`<dl class="provenance">
    <dt>document</dt><dd class="mono">${hit.document_name} <span class="muted">${hit.document_id}</span></dd>
    <dt>index</dt><dd>${hit.index_name ?? hit.index_id}</dd>
    <dt>chunk</dt><dd>#${hit.ordinal}${hit.section ? ` · ${hit.section}` : ""}${hit.page ? ` · page ${hit.page}` : ""}${" "}
      <span class="muted mono">${hit.chunk_id}</span></dd>
    ${metadata.length > 0 && html`<dt>metadata</dt><dd>${metadata.map(([k, v]) => html`<span key=${k} class="tag">${k}: ${JSON.stringify(v)}</span>`)}</dd>`}
    ${hit.metadata_error && html`<dt>metadata</dt><dd class="result-error">${hit.metadata_error}</dd>`}
  </dl>`;
}

function Hit({ hit, rank, documentResult }) {
  const chunk = documentResult ? hit.best_chunk : hit;
  const explain = chunk.explain || {};
  const highlights = chunk.highlights || [];
  return html`<li class="hit card" data-document=${hit.document_name}>
    <div class="hit-head">
      <span class="hit-rank">${rank}</span>
      <strong class="mono">${hit.document_name}</strong>
      <span class="badge badge-version" data-testid="hit-version">v${hit.version}</span>
      <span class="score" title="score">score ${fmtScore(hit.score)}</span>
      <span class="muted">dense <${Rank} value=${explain.dense_rank} /> · lexical <${Rank} value=${explain.lexical_rank} /></span>
      ${documentResult && html`<span class="muted">${hit.matching_chunks} matching chunk(s)</span>`}
    </div>
    <p class="passage">${highlights.length
      ? highlights.map((snippet, i) => html`<${Highlighted} key=${i} snippet=${snippet} />`)
      : chunk.text.slice(0, 300)}</p>
    <details><summary>Full chunk text and scores</summary>
      <pre class="doc-text">${chunk.text}</pre>
      <${Json} value=${explain} />
    </details>
    <${Provenance} hit=${chunk} />
  </li>`;
}

export function SearchView({ indexes, meta }) {
  const [form, setForm] = useState({ query: "", mode: "hybrid", result_type: "chunk", top_k: 10, filters: "",
                                     dense_weight: "", lexical_weight: "", rrf_k: "", as_of_version: "",
                                     include_history: false, data_boundary: "", account_id: "",
                                     fusion: "", prf: "", lexical_unit: "" });
  const [chosen, setChosen] = useState([]);
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [evidence, setEvidence] = useState(null);
  const boundaries = meta?.data_boundaries || FALLBACK_BOUNDARIES;
  const field = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.type === "checkbox"
    ? e.currentTarget.checked : e.currentTarget.value });

  async function submit(event) {
    event.preventDefault();
    const { body, error: invalid } = searchBody(form, chosen);
    setEvidence(null);
    if (invalid) {
      setError(invalid);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setAnswer(await post("v1/search", body));
    } catch (exc) {
      setAnswer(null);
      setError(exc);
    } finally {
      setBusy(false);
    }
  }

  async function showEvidence() {
    try {
      setEvidence(await get(`v1/rag/evidence/${seg(answer.evidence.evidence_id)}`));
    } catch (exc) {
      setEvidence({ error: exc });
    }
  }

  const toggle = (id) => setChosen(chosen.includes(id) ? chosen.filter((c) => c !== id) : [...chosen, id]);
  const ev = answer?.evidence;
  return html`<section aria-labelledby="search-title">
    <header class="view-head"><h2 id="search-title">Search playground</h2></header>
    <form class="card form-grid" onSubmit=${submit} aria-label="Search">
      <label class="wide">Query <input name="query" required value=${form.query} onInput=${field("query")}
        placeholder="parental leave" /></label>
      <label>Mode <select name="mode" value=${form.mode} onChange=${field("mode")}>
        ${["hybrid", "dense", "lexical"].map((m) => html`<option key=${m} value=${m}>${m}</option>`)}</select></label>
      <label>Result type <select name="result_type" value=${form.result_type} onChange=${field("result_type")}>
        <option value="chunk">chunks</option><option value="document">documents</option></select></label>
      <label>top_k <input name="top_k" type="number" min="1" max="100" value=${form.top_k} onInput=${field("top_k")} /></label>
      <label>Data boundary <select name="data_boundary" value=${form.data_boundary} onChange=${field("data_boundary")}>
        <option value="">default (computer)</option>
        ${boundaries.map((b) => html`<option key=${b} value=${b}>${b}</option>`)}</select></label>
      <label>Account id <input name="account_id" value=${form.account_id} onInput=${field("account_id")}
        placeholder="for personal tiers" /></label>
      <label>Dense weight <input name="dense_weight" type="number" step="any" min="0" max="100" placeholder="1"
        value=${form.dense_weight} onInput=${field("dense_weight")} /></label>
      <label>Lexical weight <input name="lexical_weight" type="number" step="any" min="0" max="100" placeholder="1"
        value=${form.lexical_weight} onInput=${field("lexical_weight")} /></label>
      <label>rrf_k <input name="rrf_k" type="number" min="1" max="1000" placeholder="60" value=${form.rrf_k}
        onInput=${field("rrf_k")} /></label>
      <label>Fusion (documents) <select name="fusion" value=${form.fusion} onChange=${field("fusion")}>
        <option value="">default</option><option value="zscore">z-score</option><option value="rrf">RRF</option></select></label>
      <label>Feedback (documents) <select name="prf" value=${form.prf} onChange=${field("prf")}>
        <option value="">default</option><option value="on">on (RM3 + Rocchio)</option><option value="off">off</option></select></label>
      <label>Lexical unit (documents) <select name="lexical_unit" value=${form.lexical_unit} onChange=${field("lexical_unit")}>
        <option value="">default</option><option value="document">whole document</option><option value="chunk">chunk</option></select></label>
      <label>as_of_version <input name="as_of_version" type="number" min="1" placeholder="current" value=${form.as_of_version}
        onInput=${field("as_of_version")} /></label>
      <label class="check"><input type="checkbox" name="include_history" checked=${form.include_history}
        onChange=${field("include_history")} /> include history (every ready version)</label>
      <label class="wide">Filters (JSON) <textarea name="filters" rows="2" value=${form.filters} onInput=${field("filters")}
        placeholder='{"year": {"gte": 2025}, "author": ["hr", "legal"]}'></textarea></label>
      <fieldset class="wide"><legend>Indexes (none ticked: every index the boundary may read)</legend>
        ${indexes.map((i) => html`<label key=${i.id} class="check inline"><input type="checkbox" checked=${chosen.includes(i.id)}
          onChange=${() => toggle(i.id)} /> ${i.name} <span class="muted">${i.privacy_tier}</span></label>`)}
      </fieldset>
      <div class="wide actions"><button class="primary" type="submit" disabled=${busy}>${busy ? "Searching…" : "Search"}</button></div>
    </form>
    <${ErrorNote} error=${error} title="Search refused" />
    ${ev && html`<div class="card evidence-summary">
      <strong>${ev.result_count} result(s)</strong> · ${ev.mode} · ${ev.result_type} · ${ev.latency_ms} ms ·
      boundary <code>${ev.data_boundary}</code> · tiers read ${ev.privacy_tiers_read.join(", ") || "none"}
      ${ev.stale_dropped > 0 && html` · ${ev.stale_dropped} stale hit(s) dropped`}
      ${ev.indexes_excluded.length > 0 && html` · excluded: ${ev.indexes_excluded.map((x) => x.name || x.index_id).join(", ")}`}
      ${ev.evidence_id && html` <button type="button" class="secondary" onClick=${showEvidence}>Evidence record</button>`}
    </div>`}
    ${evidence && html`<div class="card" data-testid="evidence">
      <h4>Evidence ${ev?.evidence_id}</h4>
      ${evidence.error ? html`<${ErrorNote} error=${evidence.error} />` : html`<${Json} value=${evidence} />`}
    </div>`}
    ${answer && answer.results.length === 0 && html`<p class="muted" data-testid="no-results">No results.</p>`}
    ${answer && html`<ol class="hits">${answer.results.map((hit, i) => html`<${Hit} key=${hit.chunk_id || hit.document_id}
      hit=${hit} rank=${i + 1} documentResult=${ev.result_type === "document"} />`)}</ol>`}
  </section>`;
}
