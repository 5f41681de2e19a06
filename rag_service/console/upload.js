// Upload: drop many files (or pick them); each goes as its own POST …/documents, so each
// shows its own progress and its own answer: created, new version, unchanged or failed.

import { useRef, useState } from "preact/hooks";

import { uploadFile } from "./api.js";
import { ErrorNote, IndexPicker, Progress, fmtBytes, html, parseJsonField } from "./ui.js";

const PARALLEL = 3; // a few at once: the server parses one while it embeds others
const ACCEPT = ".txt,.md,.html,.htm,.pdf,.docx,.csv,.json";
let nextId = 1;

function outcome(item) {
  if (item.state === "failed") return { word: "failed", kind: "failed" };
  if (item.state !== "done") return { word: item.state, kind: item.state };
  const body = item.body;
  if (body.unchanged) return { word: "unchanged", kind: "unchanged" };
  return body.version > 1 ? { word: "new version", kind: "new_version" } : { word: "created", kind: "created" };
}

function ResultText({ item }) {
  if (item.state === "failed") {
    return html`<span class="result-error">${item.error.message} <code class="error-code">${item.error.code}</code></span>`;
  }
  if (item.state !== "done") return null;
  const b = item.body;
  if (b.unchanged) return html`<span>same bytes and metadata as v${b.version}: nothing re-indexed</span>`;
  const chunks = `${b.chunk_count} chunk${b.chunk_count === 1 ? "" : "s"}`;
  const counts = `(${b.chunks_embedded} embedded, ${b.chunks_reused} reused)`;
  return html`<span><strong>v${b.version}</strong> of ${b.name}: ${chunks} ${counts} · ${b.status}</span>`;
}

export function UploadView({ indexes, indexId, setIndexId, reloadIndexes }) {
  const [items, setItems] = useState([]);
  const [metadata, setMetadata] = useState("");
  const [error, setError] = useState(null);
  const [dragging, setDragging] = useState(false);
  const picker = useRef(null);
  const index = indexes.find((i) => i.id === indexId);

  const update = (id, change) => setItems((all) => all.map((it) => (it.id === id ? { ...it, ...change } : it)));

  async function run(queue, meta) {
    const work = [...queue];
    async function worker() {
      for (let item = work.shift(); item; item = work.shift()) {
        update(item.id, { state: "uploading", progress: 0 });
        try {
          const { body } = await uploadFile(item.indexId, item.file, {
            metadata: meta,
            onProgress: (fraction) => update(item.id, { progress: fraction * 100 }),
          });
          update(item.id, { state: "done", progress: 100, body });
        } catch (exc) {
          update(item.id, { state: "failed", error: exc });
          if (exc.status === 401) return; // the key gate takes over
        }
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    reloadIndexes();
  }

  function add(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    if (!index) {
      setError({ message: "choose or create an index first", code: "no_index", body: {} });
      return;
    }
    const meta = parseJsonField(metadata, "metadata");
    if (meta.error) {
      setError(meta.error);
      return;
    }
    setError(null);
    const queued = files.map((file) => ({ id: nextId++, file, indexId: index.id, indexName: index.name,
                                          state: "queued", progress: 0 }));
    setItems((all) => [...queued, ...all]);
    run(queued, meta.value ? JSON.stringify(meta.value) : undefined);
  }

  const onDrop = (event) => {
    event.preventDefault();
    setDragging(false);
    add(event.dataTransfer?.files);
  };
  const counts = items.reduce((acc, it) => ({ ...acc, [outcome(it).kind]: (acc[outcome(it).kind] || 0) + 1 }), {});

  return html`<section aria-labelledby="upload-title">
    <header class="view-head"><h2 id="upload-title">Upload</h2>
      <${IndexPicker} indexes=${indexes} indexId=${indexId} setIndexId=${setIndexId} /></header>
    <div class=${`dropzone ${dragging ? "dragging" : ""}`} data-testid="dropzone"
      onDragOver=${(e) => { e.preventDefault(); setDragging(true); }}
      onDragLeave=${() => setDragging(false)} onDrop=${onDrop}>
      <p><strong>Drop files here</strong> to upload them into ${index ? html`<em>${index.name}</em>` : "an index"}</p>
      <p class="muted">${ACCEPT.replaceAll(",", " ")} — a name that exists gets a new version; identical bytes are
        left unchanged.</p>
      <button type="button" class="primary" onClick=${() => picker.current?.click()}>Choose files…</button>
      <input ref=${picker} type="file" multiple accept=${ACCEPT} hidden name="files"
        onChange=${(e) => { add(e.currentTarget.files); e.currentTarget.value = ""; }} />
    </div>
    <label class="block">Metadata for these files (JSON object, optional)
      <textarea name="metadata" rows="2" placeholder='{"author": "hr", "year": 2026}' value=${metadata}
        onInput=${(e) => setMetadata(e.currentTarget.value)}></textarea>
    </label>
    <${ErrorNote} error=${error} />
    ${items.length > 0 && html`<p class="muted summary">${Object.entries(counts).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(" · ")}${" "}
      <button type="button" class="link" onClick=${() => setItems((all) => all.filter((i) => i.state === "uploading" || i.state === "queued"))}>
        clear finished</button></p>`}
    <table class="data" aria-label="Uploads">
      <thead><tr><th>File</th><th>Index</th><th class="num">Size</th><th>Progress</th><th>Result</th><th></th></tr></thead>
      <tbody>
        ${items.length === 0 && html`<tr><td colspan="6" class="muted">Nothing uploaded in this tab yet.</td></tr>`}
        ${items.map((item) => {
          const o = outcome(item);
          return html`<tr key=${item.id} data-file=${item.file.name} class=${`upload-${o.kind}`}>
            <td class="mono">${item.file.name}</td>
            <td>${item.indexName}</td>
            <td class="num">${fmtBytes(item.file.size)}</td>
            <td><${Progress} value=${item.progress} label=${item.state === "uploading" && item.progress >= 100 ? "indexing…" : undefined} /></td>
            <td><span class=${`badge badge-${o.kind}`}>${o.word}</span> <${ResultText} item=${item} /></td>
            <td>${item.state === "done" && html`<a href="#/documents">documents</a>`}</td>
          </tr>`;
        })}
      </tbody>
    </table>
  </section>`;
}
