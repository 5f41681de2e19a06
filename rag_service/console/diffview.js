// The difference between two versions of a document: a line diff of their text (jsdiff),
// and which chunks the newer one kept, which are new text (embedded for it unless that text
// was already embedded elsewhere) and which went away.

import { diffLines } from "diff";

import { get, seg } from "./api.js";
import { ErrorNote, html, useLoad } from "./ui.js";

/** One version with its text and chunks. */
export function loadVersion(indexId, documentId, number) {
  return get(`v1/indexes/${seg(indexId)}/documents/${seg(documentId)}/versions/${number}`);
}

/** Per chunk of `newer`: "kept" if `older` had a chunk with the same text, else "new". */
export function compareChunks(older, newer) {
  const before = new Map(older.chunks.map((c) => [c.text, c]));
  const after = new Set(newer.chunks.map((c) => c.text));
  const rows = newer.chunks.map((c) => ({ chunk: c, state: before.has(c.text) ? "kept" : "new",
                                         was: before.get(c.text)?.ordinal }));
  const removed = older.chunks.filter((c) => !after.has(c.text));
  return { rows, removed };
}

function LineDiff({ parts }) {
  let added = 0;
  let removed = 0;
  for (const part of parts) {
    if (part.added) added += part.count;
    if (part.removed) removed += part.count;
  }
  return html`<div>
    <p class="muted" data-testid="diff-summary">${added} line(s) added, ${removed} line(s) removed</p>
    <pre class="diff" aria-label="Text diff">${parts.map((part, i) => {
      const kind = part.added ? "added" : part.removed ? "removed" : "same";
      const sign = part.added ? "+ " : part.removed ? "- " : "  ";
      const lines = part.value.replace(/\n$/, "").split("\n");
      return html`<span key=${i} class=${`diff-${kind}`}>${lines.map((line) => `${sign}${line}\n`).join("")}</span>`;
    })}</pre>
  </div>`;
}

export function VersionDiff({ indexId, documentId, from, to }) {
  const pair = useLoad(
    () => Promise.all([loadVersion(indexId, documentId, from), loadVersion(indexId, documentId, to)]),
    [indexId, documentId, from, to],
  );
  if (pair.error) return html`<${ErrorNote} error=${pair.error} title="Versions could not be read" />`;
  if (!pair.data) return html`<p class="muted">Loading v${from} and v${to}…</p>`;
  const [older, newer] = pair.data;
  // Both end in a newline, so a last line that merely gained a successor does not show as changed.
  const withEol = (text) => (!text || text.endsWith("\n") ? text || "" : `${text}\n`);
  const parts = diffLines(withEol(older.text), withEol(newer.text));
  const { rows, removed } = compareChunks(older, newer);
  const kept = rows.filter((r) => r.state === "kept").length;
  return html`<div class="card" data-testid="version-diff">
    <h4>v${older.version} → v${newer.version}</h4>
    <${LineDiff} parts=${parts} />
    <h4>Chunks</h4>
    <p data-testid="chunk-summary">v${newer.version} has ${newer.chunks.length} chunks: ${kept} unchanged from
      v${older.version}, ${rows.length - kept} with new text, ${removed.length} of v${older.version}'s gone.
      The service reports for v${newer.version}: <strong>${newer.chunks_embedded} embedded</strong>,${" "}
      <strong>${newer.chunks_reused} reused</strong>${" "}
      <span class="muted">(reused: the same text was already embedded with this encoder, by an earlier version or
      another document)</span>.</p>
    <table class="data compact" aria-label="Chunk changes">
      <thead><tr><th class="num">#</th><th>Change</th><th>Section</th><th>Text</th></tr></thead>
      <tbody>
        ${rows.map(({ chunk, state, was }) => html`<tr key=${chunk.chunk_id} class=${`chunk-${state}`}>
          <td class="num">${chunk.ordinal}</td>
          <td>${state === "kept"
            ? html`<span class="badge badge-unchanged">unchanged</span> <span class="muted">was #${was}</span>`
            : html`<span class="badge badge-new_version">new text</span>`}</td>
          <td>${chunk.section ?? "—"}</td>
          <td class="chunk-text">${chunk.text}</td>
        </tr>`)}
        ${removed.map((chunk) => html`<tr key=${`gone-${chunk.chunk_id}`} class="chunk-removed">
          <td class="num">${chunk.ordinal}</td>
          <td><span class="badge badge-failed">removed</span> <span class="muted">v${older.version}</span></td>
          <td>${chunk.section ?? "—"}</td>
          <td class="chunk-text">${chunk.text}</td>
        </tr>`)}
      </tbody>
    </table>
  </div>`;
}
