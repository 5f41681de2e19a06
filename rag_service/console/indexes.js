// Indexes: the list, creating one (tier, embedding model, chunking) and deleting one.

import { useState } from "preact/hooks";

import { del, post, seg } from "./api.js";
import { ErrorNote, Notice, confirmAction, fmtTime, html, shortId } from "./ui.js";

const FALLBACK_TIERS = ["public", "mesh_safe", "private", "personal"];

function CreateIndexForm({ meta, onCreated }) {
  const empty = { name: "", description: "", privacy_tier: "private", embedding_model: "",
                  chunk_max_characters: "", chunk_overlap: "" };
  const [form, setForm] = useState(empty);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const tiers = meta?.privacy_tiers || FALLBACK_TIERS;
  const models = meta?.embedding_models || [];
  const field = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.value });

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = { name: form.name.trim(), privacy_tier: form.privacy_tier };
    if (form.description.trim()) body.description = form.description.trim();
    if (form.embedding_model.trim()) body.embedding_model = form.embedding_model.trim();
    // Empty number fields mean "the server's default" (RAG_DEFAULT_CHUNK_*), so they are left out.
    for (const name of ["chunk_max_characters", "chunk_overlap"]) {
      if (String(form[name]).trim() !== "") body[name] = Number(form[name]);
    }
    try {
      const index = await post("v1/indexes", body);
      setForm(empty);
      onCreated(index);
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }

  return html`<form class="card form-grid" onSubmit=${submit} aria-label="Create an index">
    <h3>Create an index</h3>
    <label>Name <input name="name" required maxlength="200" value=${form.name} onInput=${field("name")} /></label>
    <label>Privacy tier
      <select name="privacy_tier" value=${form.privacy_tier} onChange=${field("privacy_tier")}>
        ${tiers.map((t) => html`<option key=${t} value=${t}>${t}</option>`)}
      </select>
    </label>
    <label>Embedding model
      <input name="embedding_model" list="embedding-models" value=${form.embedding_model}
        placeholder=${meta?.embedding_models?.[0] ? `default (${models[0]})` : "server default"}
        onInput=${field("embedding_model")} />
      <datalist id="embedding-models">${models.map((m) => html`<option key=${m} value=${m} />`)}</datalist>
    </label>
    <label>Chunk max characters
      <input name="chunk_max_characters" type="number" min="50" max="20000" placeholder="default 1000"
        value=${form.chunk_max_characters} onInput=${field("chunk_max_characters")} />
    </label>
    <label>Chunk overlap
      <input name="chunk_overlap" type="number" min="0" placeholder="default 0"
        value=${form.chunk_overlap} onInput=${field("chunk_overlap")} />
    </label>
    <label class="wide">Description
      <input name="description" maxlength="4000" value=${form.description} onInput=${field("description")} />
    </label>
    <div class="wide actions">
      <button class="primary" type="submit" disabled=${busy}>${busy ? "Creating…" : "Create index"}</button>
    </div>
    <div class="wide"><${ErrorNote} error=${error} title="Not created" /></div>
  </form>`;
}

export function IndexesView({ indexes, meta, reloadIndexes, setIndexId }) {
  const [notice, setNotice] = useState(null);
  const [error, setError] = useState(null);

  async function remove(index) {
    const ok = await confirmAction({
      title: `Delete index “${index.name}”?`,
      body: `Its ${index.document_count} document(s), every version and every vector go with it. This cannot be undone.`,
      confirmLabel: "Delete index",
    });
    if (!ok) return;
    setError(null);
    try {
      await del(`v1/indexes/${seg(index.id)}`);
      setNotice(`Index “${index.name}” deleted.`);
      await reloadIndexes();
    } catch (exc) {
      setError(exc);
    }
  }

  function open(index, route) {
    setIndexId(index.id);
    location.hash = `#/${route}`;
  }

  return html`<section aria-labelledby="indexes-title">
    <header class="view-head"><h2 id="indexes-title">Indexes</h2>
      <button type="button" class="secondary" onClick=${reloadIndexes}>Refresh</button></header>
    <${Notice}>${notice}<//>
    <${ErrorNote} error=${error} title="Not deleted" />
    <table class="data" aria-label="Indexes">
      <thead><tr>
        <th>Name</th><th>Privacy tier</th><th>Embedding model</th><th>Encoder</th><th>Chunking</th>
        <th class="num">Documents</th><th>Created</th><th></th>
      </tr></thead>
      <tbody>
        ${indexes.length === 0 && html`<tr><td colspan="8" class="muted">No index yet.</td></tr>`}
        ${indexes.map((index) => html`<tr key=${index.id} data-index=${index.name}>
          <td><strong>${index.name}</strong><div class="muted mono" title=${index.id}>${shortId(index.id)}</div>
            ${index.description && html`<div class="muted">${index.description}</div>`}</td>
          <td>${index.privacy_tier}</td>
          <td class="mono">${index.embedding_model}<div class="muted">${index.embedding_dim} dims</div></td>
          <td>${index.encoder ? `${index.encoder.backend} ${index.encoder.precision}` : "—"}</td>
          <td>${index.chunking.max_characters} chars, overlap ${index.chunking.overlap}</td>
          <td class="num">${index.document_count}</td>
          <td>${fmtTime(index.created_at)}</td>
          <td class="row-actions">
            <button type="button" class="secondary" onClick=${() => open(index, "documents")}>Documents</button>
            <button type="button" class="secondary" onClick=${() => open(index, "upload")}>Upload</button>
            <button type="button" class="danger" onClick=${() => remove(index)}>Delete</button>
          </td>
        </tr>`)}
      </tbody>
    </table>
    <${CreateIndexForm} meta=${meta} onCreated=${async (index) => {
      setNotice(`Index “${index.name}” created.`);
      await reloadIndexes();
      setIndexId(index.id);
    }} />
  </section>`;
}
