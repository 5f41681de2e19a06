// Documents: an index's documents with their status; soft delete, restore and hard delete.
// Selecting one opens its versions (versions.js).

import { useState } from "preact/hooks";

import { del, get, post, seg } from "./api.js";
import { Badge, ErrorNote, IndexPicker, Notice, confirmAction, fmtBytes, fmtTime, html, useLiveRefresh, useLoad } from "./ui.js";
import { DocumentDetail } from "./versions.js";

const PER_PAGE = 100;

export function DocumentsView({ indexes, indexId, setIndexId, reloadIndexes }) {
  const [includeDeleted, setIncludeDeleted] = useState(false);
  const [prefix, setPrefix] = useState("");
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState(null);
  const [notice, setNotice] = useState(null);
  const [actionError, setActionError] = useState(null);
  const list = useLoad(
    () => (indexId
      ? get(`v1/indexes/${seg(indexId)}/documents`, { page, per_page: PER_PAGE, include_deleted: includeDeleted,
                                                       name_prefix: prefix })
      : null),
    [indexId, includeDeleted, prefix, page],
  );
  useLiveRefresh(["document."], list.reload);

  async function act(doc, action) {
    const base = `v1/indexes/${seg(indexId)}/documents/${seg(doc.id)}`;
    if (action === "hard") {
      const ok = await confirmAction({
        title: `Delete “${doc.name}” for good?`,
        body: `Every version (${doc.latest_version}), its text, chunks and vectors are removed. This cannot be undone; a soft delete can be restored.`,
        confirmLabel: "Delete for good",
      });
      if (!ok) return;
    } else if (action === "soft") {
      const ok = await confirmAction({
        title: `Delete “${doc.name}”?`,
        body: "It leaves search at once. Its versions are kept: Restore brings it back.",
        confirmLabel: "Delete",
      });
      if (!ok) return;
    }
    setActionError(null);
    try {
      if (action === "restore") await post(`${base}/restore`);
      else await del(base, action === "hard" ? { hard: true } : undefined);
      const words = { soft: "deleted (restorable)", hard: "deleted for good", restore: "restored" };
      setNotice(`“${doc.name}” ${words[action]}.`);
      if (action === "hard" && selected?.id === doc.id) setSelected(null);
      list.reload();
      reloadIndexes();
    } catch (exc) {
      setActionError(exc);
    }
  }

  const data = list.data;
  const pages = data ? Math.max(1, Math.ceil(data.total / PER_PAGE)) : 1;
  return html`<section aria-labelledby="documents-title">
    <header class="view-head"><h2 id="documents-title">Documents</h2>
      <${IndexPicker} indexes=${indexes} indexId=${indexId}
        setIndexId=${(id) => { setIndexId(id); setSelected(null); setPage(1); }} />
    </header>
    <div class="toolbar">
      <label class="inline">Name starts with
        <input name="name_prefix" value=${prefix} onInput=${(e) => { setPrefix(e.currentTarget.value); setPage(1); }} />
      </label>
      <label class="inline check"><input type="checkbox" name="include_deleted" checked=${includeDeleted}
        onChange=${(e) => setIncludeDeleted(e.currentTarget.checked)} /> show deleted</label>
      <button type="button" class="secondary" onClick=${list.reload}>Refresh</button>
    </div>
    <${Notice}>${notice}<//>
    <${ErrorNote} error=${actionError} title="Not done" />
    <${ErrorNote} error=${list.error} />
    <table class="data" aria-label="Documents">
      <thead><tr><th>Name</th><th>Status</th><th class="num">Current / latest</th><th class="num">Chunks</th>
        <th class="num">Size</th><th>Updated</th><th></th></tr></thead>
      <tbody>
        ${data && data.items.length === 0 && html`<tr><td colspan="7" class="muted">No documents.</td></tr>`}
        ${data && data.items.map((doc) => html`<tr key=${doc.id} data-document=${doc.name}
            class=${selected?.id === doc.id ? "selected" : ""}>
          <td><button type="button" class="link strong" onClick=${() => setSelected(doc)}>${doc.name}</button>
            ${doc.deleted && html` <${Badge} state="deleted" />`}</td>
          <td><${Badge} state=${doc.status} /></td>
          <td class="num">v${doc.current_version ?? "—"} / v${doc.latest_version}</td>
          <td class="num">${doc.chunk_count}</td>
          <td class="num">${fmtBytes(doc.size_bytes)}</td>
          <td>${fmtTime(doc.updated_at)}</td>
          <td class="row-actions">
            <button type="button" class="secondary" onClick=${() => setSelected(doc)}>Versions</button>
            ${doc.deleted
              ? html`<button type="button" class="secondary" onClick=${() => act(doc, "restore")}>Restore</button>`
              : html`<button type="button" class="secondary" onClick=${() => act(doc, "soft")}>Delete</button>`}
            <button type="button" class="danger" onClick=${() => act(doc, "hard")}>Hard delete</button>
          </td>
        </tr>`)}
      </tbody>
    </table>
    ${pages > 1 && html`<div class="pager">
      <button type="button" class="secondary" disabled=${page <= 1} onClick=${() => setPage(page - 1)}>Previous</button>
      <span>page ${page} of ${pages} (${data.total} documents)</span>
      <button type="button" class="secondary" disabled=${page >= pages} onClick=${() => setPage(page + 1)}>Next</button>
    </div>`}
    ${selected && html`<${DocumentDetail} key=${selected.id} indexId=${indexId} document=${selected}
      onClose=${() => setSelected(null)} />`}
  </section>`;
}
