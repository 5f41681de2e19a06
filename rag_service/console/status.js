// Status: what GET /v1/rag/status measures now — components, retrieval modes, job classes,
// events — and the data-boundary policy table the service enforces.

import { Badge, ErrorNote, Json, fmtTime, html, useLoad } from "./ui.js";
import { get } from "./api.js";

/** A component's state in the status vocabulary: live, unavailable, or available_when_configured. */
export function componentState(component) {
  if (component.configured === false) return "available_when_configured";
  return component.reachable ? "live" : "unavailable";
}

const DETAIL_SKIP = new Set(["reachable", "configured", "probe_ms", "error"]);

function Components({ components }) {
  return html`<table class="data" aria-label="Components">
    <thead><tr><th>Component</th><th>State</th><th class="num">Probe</th><th>Detail</th></tr></thead>
    <tbody>${Object.entries(components).map(([name, c]) => html`<tr key=${name} data-component=${name}>
      <td><strong>${name.replaceAll("_", " ")}</strong></td>
      <td><${Badge} state=${componentState(c)} /></td>
      <td class="num">${c.probe_ms !== undefined ? `${c.probe_ms} ms` : "—"}</td>
      <td>${c.error && html`<div class="result-error">${c.error}</div>`}
        ${Object.entries(c).filter(([k]) => !DETAIL_SKIP.has(k)).map(([k, v]) => html`<span key=${k} class="tag">${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}</span>`)}</td>
    </tr>`)}</tbody>
  </table>`;
}

function StateTable({ label, states }) {
  return html`<table class="data compact" aria-label=${label}>
    <thead><tr><th>${label}</th><th>State</th></tr></thead>
    <tbody>${Object.entries(states).map(([name, state]) => html`<tr key=${name} data-name=${name}>
      <td>${name}</td><td><${Badge} state=${state} /></td></tr>`)}</tbody>
  </table>`;
}

function PolicyTable({ policy, tiers }) {
  const labels = { yes: "may read", no: "refused", same_account: "same account only" };
  return html`<table class="data policy" aria-label="Boundary policy">
    <thead><tr><th>data_boundary ↓ / privacy_tier →</th>${tiers.map((t) => html`<th key=${t}>${t}</th>`)}</tr></thead>
    <tbody>${Object.entries(policy).map(([boundary, row]) => html`<tr key=${boundary} data-boundary=${boundary}>
      <th scope="row" class="mono">${boundary}</th>
      ${tiers.map((t) => html`<td key=${t} class=${`policy-${row[t]}`}>${labels[row[t]] ?? row[t]}</td>`)}
    </tr>`)}</tbody>
  </table>`;
}

function Project({ project }) {
  const evals = Object.entries(project.latest_eval || {});
  return html`<div class="card">
    <h3>This key's project</h3>
    <div class="stats">
      ${["indexes", "documents", "versions", "chunks"].map((k) => html`<div key=${k} class="stat">
        <span class="stat-value">${project[k]}</span><span class="stat-label">${k}</span></div>`)}
    </div>
    <p>Jobs: ${Object.entries(project.jobs || {}).map(([state, n]) => html`<span key=${state} class="tag">${state}: ${n}</span>`)}</p>
    ${evals.length > 0 && html`<p class="muted">Latest eval: ${evals.map(([index, run]) => html`<span key=${index} class="tag">
      ${index.slice(0, 8)} · ${fmtTime(run.created_at)} · hybrid nDCG@10 ${run.metrics?.hybrid?.["ndcg@10"] ?? "—"}</span>`)}</p>`}
  </div>`;
}

export function StatusView() {
  const status = useLoad(() => get("v1/rag/status"), []);
  const s = status.data;
  return html`<section aria-labelledby="status-title">
    <header class="view-head"><h2 id="status-title">Status</h2>
      ${s && html`<${Badge} state=${s.status} label=${`service ${s.status}`} />`}
      <button type="button" class="secondary" onClick=${status.reload} disabled=${status.loading}>
        ${status.loading ? "Probing…" : "Probe again"}</button></header>
    <${ErrorNote} error=${status.error} />
    ${s && html`<div class="grid-2">
      <div class="card wide-card"><h3>Components</h3><${Components} components=${s.components} /></div>
      <div class="card"><h3>Retrieval modes</h3><${StateTable} label="Mode" states=${s.retrieval_modes} /></div>
      <div class="card"><h3>Job classes</h3><${StateTable} label="Job class" states=${s.job_classes} /></div>
      <div class="card"><h3>Events</h3>
        <${StateTable} label="Channel" states=${{ event_stream: s.events.event_stream, webhooks: s.events.webhooks }} />
        <p class="muted">Kept ${s.events.retention_hours} h: ${s.events.event_types.join(", ")}</p></div>
      <div class="card"><h3>Embedding</h3>
        <p>Models: ${s.embedding_models.map((m) => html`<span key=${m} class="tag mono">${m}</span>`)}</p>
        <p>Loaded: ${(s.embedding_models_loaded || []).map((m) => html`<span key=${m} class="tag mono">${m}</span>`)}</p>
        <p>Rerank model: ${s.rerank_model ?? html`<span class="muted">none (RAG_RERANK_MODEL)</span>`}</p>
        <details><summary>Encoder decisions</summary><${Json} value=${s.encoders} /></details></div>
      <div class="card wide-card"><h3>Boundary policy</h3>
        <p class="muted">Which <code>data_boundary</code> of a request may read (and write) which <code>privacy_tier</code> of an
          index; the same table refuses uploads, reads, searches and jobs.</p>
        <${PolicyTable} policy=${s.boundary_policy} tiers=${s.privacy_tiers} /></div>
      ${s.project && html`<div class="wide-card"><${Project} project=${s.project} /></div>`}
    </div>`}
  </section>`;
}
