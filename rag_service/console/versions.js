// One document: its versions, the text and chunks of any version, and a diff of two.

import { useEffect, useState } from "preact/hooks";

import { get, seg } from "./api.js";
import { Badge, ErrorNote, fmtBytes, fmtTime, html, useLiveRefresh, useLoad } from "./ui.js";
import { VersionDiff, loadVersion } from "./diffview.js";

function VersionText({ indexId, documentId, number }) {
  const version = useLoad(() => loadVersion(indexId, documentId, number), [indexId, documentId, number]);
  if (version.error) return html`<${ErrorNote} error=${version.error} />`;
  if (!version.data) return html`<p class="muted">Loading v${number}…</p>`;
  const v = version.data;
  return html`<div class="card" data-testid="version-view">
    <h4>v${v.version} of ${v.name} <${Badge} state=${v.status} /></h4>
    <p class="muted">${v.filename} · ${v.media_type} · ${fmtBytes(v.size_bytes)} · sha256 <span class="mono">${v.content_hash?.slice(0, 16)}</span>${" "}
      · ${v.chunk_count} chunks (${v.chunks_embedded} embedded, ${v.chunks_reused} reused)</p>
    ${v.error && html`<div class="note error">${v.error}</div>`}
    ${Object.keys(v.metadata || {}).length > 0 && html`<p>Metadata: <span class="mono">${JSON.stringify(v.metadata)}</span></p>`}
    ${v.metadata_error && html`<p class="note warn">${v.metadata_error}</p>`}
    <details open>
      <summary>Text (${v.text?.length ?? 0} characters)</summary>
      <pre class="doc-text">${v.text}</pre>
    </details>
    <details open>
      <summary>Chunks (${v.chunks.length})</summary>
      <table class="data compact" aria-label="Chunks">
        <thead><tr><th class="num">#</th><th>Section</th><th class="num">Page</th><th>Text</th></tr></thead>
        <tbody>${v.chunks.map((c) => html`<tr key=${c.chunk_id}>
          <td class="num">${c.ordinal}</td><td>${c.section ?? "—"}</td><td class="num">${c.page ?? "—"}</td>
          <td class="chunk-text">${c.text}</td></tr>`)}</tbody>
      </table>
    </details>
  </div>`;
}

export function DocumentDetail({ indexId, document, onClose }) {
  const versions = useLoad(
    () => get(`v1/indexes/${seg(indexId)}/documents/by-name/${seg(document.name)}/versions`),
    [indexId, document.id],
  );
  useLiveRefresh(["document."], versions.reload);
  const items = versions.data?.items || [];
  const ready = items.filter((v) => v.status === "ready");
  const [shown, setShown] = useState(null);
  const [from, setFrom] = useState(null);
  const [to, setTo] = useState(null);
  const [compare, setCompare] = useState(null);

  // Default comparison: the latest ready version against the one before it.
  useEffect(() => {
    if (ready.length >= 2 && from === null && to === null) {
      setFrom(ready[ready.length - 2].version);
      setTo(ready[ready.length - 1].version);
    }
  }, [items.length]);

  return html`<section class="card detail" aria-label=${`Document ${document.name}`} data-testid="document-detail">
    <header class="view-head">
      <h3>${document.name}</h3>
      <button type="button" class="secondary" onClick=${onClose}>Close</button>
    </header>
    <${ErrorNote} error=${versions.error} />
    <table class="data" aria-label="Versions">
      <thead><tr><th>Version</th><th>Status</th><th>Created</th><th class="num">Size</th><th class="num">Chunks</th>
        <th class="num">Embedded</th><th class="num">Reused</th><th>Content hash</th><th></th></tr></thead>
      <tbody>${items.map((v) => html`<tr key=${v.id} data-version=${v.version}>
        <td><strong>v${v.version}</strong> ${v.current && html`<${Badge} state="current" />`}</td>
        <td><${Badge} state=${v.status} />${v.error && html`<div class="result-error">${v.error}</div>`}</td>
        <td>${fmtTime(v.created_at)}</td>
        <td class="num">${fmtBytes(v.size_bytes)}</td>
        <td class="num">${v.chunk_count}</td>
        <td class="num">${v.chunks_embedded}</td>
        <td class="num">${v.chunks_reused}</td>
        <td class="mono">${v.content_hash?.slice(0, 12)}</td>
        <td><button type="button" class="secondary" onClick=${() => setShown(v.version)}>View v${v.version}</button></td>
      </tr>`)}</tbody>
    </table>
    ${items.length >= 2 && html`<form class="toolbar" aria-label="Compare versions"
        onSubmit=${(e) => { e.preventDefault(); setCompare({ from, to }); }}>
      <label class="inline">Compare
        <select name="from" value=${from ?? ""} onChange=${(e) => setFrom(Number(e.currentTarget.value))}>
          ${items.map((v) => html`<option key=${v.id} value=${v.version}>v${v.version}</option>`)}
        </select>
      </label>
      <label class="inline">with
        <select name="to" value=${to ?? ""} onChange=${(e) => setTo(Number(e.currentTarget.value))}>
          ${items.map((v) => html`<option key=${v.id} value=${v.version}>v${v.version}</option>`)}
        </select>
      </label>
      <button type="submit" class="primary" disabled=${!from || !to || from === to}>Show diff</button>
    </form>`}
    ${compare && html`<${VersionDiff} key=${`${compare.from}-${compare.to}`} indexId=${indexId}
      documentId=${document.id} from=${compare.from} to=${compare.to} />`}
    ${shown && html`<${VersionText} key=${shown} indexId=${indexId} documentId=${document.id} number=${shown} />`}
  </section>`;
}
