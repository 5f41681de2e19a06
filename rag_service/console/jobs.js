// Jobs: the project's jobs with their progress, submitting an eval or a reindex (and the
// other live classes), cancelling, and the eval chart. Refreshed by job events and, while
// a job is queued or running, by polling (progress moves without events).

import { useEffect, useState } from "preact/hooks";

import { get, post, seg } from "./api.js";
import { EvalChart, evalRuns } from "./chart.js";
import { Badge, ErrorNote, IndexPicker, Json, Notice, Progress, confirmAction, fmtTime, html, parseJsonField,
         shortId, useLiveRefresh, useLoad } from "./ui.js";

const POLL_MS = 1500;
const SUBMITTABLE = ["eval", "tune", "reindex", "reconcile", "purge"]; // ingest jobs come from async uploads
const NEEDS_INDEX = new Set(["eval", "tune", "reindex"]);

/** A starting point for each class's params (rag_service/services/job_params.py). */
function template(jobClass) {
  const templates = {
    eval: { modes: ["dense", "lexical", "hybrid"], top_k: 100,
            queries: { q1: "your question" }, qrels: { q1: { "document-name.md": 1 } } },
    tune: { queries: { q1: "your question" }, qrels: { q1: { "document-name.md": 1 } },
            grid: { modes: ["hybrid", "dense", "lexical"], rrf_k: [20, 60, 120],
                    fusion_weights: [[1, 1], [1, 2], [2, 1]] }, alpha: 0.05 },
    reindex: { chunk_max_characters: 800, chunk_overlap: 0, max_ndcg_drop: 0.01 },
    reconcile: { stuck_after_seconds: 300 },
    purge: { older_than_seconds: 2592000 },
  };
  return JSON.stringify(templates[jobClass], null, 2);
}

function SubmitForm({ indexes, indexId, setIndexId, onSubmitted }) {
  const [jobClass, setJobClass] = useState("eval");
  const [params, setParams] = useState(template("eval"));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    const parsed = parseJsonField(params, "params");
    if (parsed.error) {
      setError(parsed.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body = { job_class: jobClass, params: parsed.value || {} };
      if (NEEDS_INDEX.has(jobClass)) body.index_id = indexId;
      onSubmitted(await post("v1/rag/jobs", body));
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }

  return html`<form class="card" onSubmit=${submit} aria-label="Submit a job">
    <h3>Submit a job</h3>
    <div class="toolbar">
      <label class="inline">Job class
        <select name="job_class" value=${jobClass}
          onChange=${(e) => { setJobClass(e.currentTarget.value); setParams(template(e.currentTarget.value)); }}>
          ${SUBMITTABLE.map((c) => html`<option key=${c} value=${c}>${c}</option>`)}
        </select></label>
      ${NEEDS_INDEX.has(jobClass) && html`<${IndexPicker} indexes=${indexes} indexId=${indexId} setIndexId=${setIndexId} />`}
    </div>
    <label class="block">Params (JSON)
      <textarea name="params" rows="8" class="mono" value=${params} onInput=${(e) => setParams(e.currentTarget.value)}></textarea>
    </label>
    <p class="muted">${jobClass === "eval"
      ? "queries: {id: text}; qrels: {query id: {document name: relevance}}. Scores nDCG@10, Recall@100 and MRR@10 per mode."
      : jobClass === "tune"
        ? "Tries every setting of the grid on the labelled set and makes the best the index's search defaults only if a paired t-test supports it (p < alpha)."
      : jobClass === "reindex"
        ? "Rebuilds into a shadow collection and swaps only if nDCG@10 (on params.eval or the index's last eval set) drops by no more than max_ndcg_drop."
        : "Runs over the whole project."}</p>
    <div class="actions"><button type="submit" class="primary" disabled=${busy}>${busy ? "Submitting…" : `Submit ${jobClass}`}</button></div>
    <${ErrorNote} error=${error} title="Not submitted" />
  </form>`;
}

function JobRow({ job, indexName, onCancel, open, setOpen }) {
  const active = job.status === "queued" || job.status === "running";
  return html`<tr data-job=${job.id} data-class=${job.job_class}>
    <td class="mono" title=${job.id}>${shortId(job.id)}</td>
    <td>${job.job_class}</td>
    <td><${Badge} state=${job.status} />${job.cancel_requested && active && html` <span class="muted">cancelling</span>`}</td>
    <td><${Progress} value=${job.status === "succeeded" ? 100 : job.progress || 0} /></td>
    <td>${indexName ?? (job.index_id ? shortId(job.index_id) : "—")}</td>
    <td>${fmtTime(job.created_at)}</td>
    <td>${fmtTime(job.finished_at)}</td>
    <td class="result-error">${job.error}</td>
    <td class="row-actions">
      <button type="button" class="secondary" onClick=${() => setOpen(open ? null : job.id)}>${open ? "Hide" : "Details"}</button>
      ${active && html`<button type="button" class="danger" onClick=${() => onCancel(job)}>Cancel</button>`}
    </td>
  </tr>`;
}

export function JobsView({ indexes, indexId, setIndexId }) {
  const jobs = useLoad(() => get("v1/rag/jobs", { per_page: 200 }), []);
  const [open, setOpen] = useState(null);
  const [notice, setNotice] = useState(null);
  const [error, setError] = useState(null);
  useLiveRefresh(["job."], jobs.reload);
  const items = jobs.data?.jobs?.items || [];
  const anyActive = items.some((j) => j.status === "queued" || j.status === "running");
  useEffect(() => {
    if (!anyActive) return undefined;
    const timer = setInterval(jobs.reload, POLL_MS);
    return () => clearInterval(timer);
  }, [anyActive]);

  async function cancel(job) {
    const ok = await confirmAction({ title: `Cancel ${job.job_class} job ${shortId(job.id)}?`,
                                     body: "A queued job stops at once; a running one at its next progress step.",
                                     confirmLabel: "Cancel job" });
    if (!ok) return;
    try {
      await post(`v1/rag/jobs/${seg(job.id)}/cancel`);
      setNotice(`Cancellation of ${shortId(job.id)} requested.`);
      jobs.reload();
    } catch (exc) {
      setError(exc);
    }
  }

  const names = Object.fromEntries(indexes.map((i) => [i.id, i.name]));
  const openJob = items.find((j) => j.id === open);
  const chosenIndex = indexes.find((i) => i.id === indexId);
  return html`<section aria-labelledby="jobs-title">
    <header class="view-head"><h2 id="jobs-title">Jobs</h2>
      <button type="button" class="secondary" onClick=${jobs.reload}>Refresh</button></header>
    <${SubmitForm} indexes=${indexes} indexId=${indexId} setIndexId=${setIndexId}
      onSubmitted=${(job) => { setNotice(`Submitted ${job.job_class} job ${shortId(job.id)}.`); jobs.reload(); }} />
    <${Notice}>${notice}<//>
    <${ErrorNote} error=${error || jobs.error} />
    <table class="data" aria-label="Jobs">
      <thead><tr><th>Job</th><th>Class</th><th>Status</th><th>Progress</th><th>Index</th><th>Created</th><th>Finished</th>
        <th>Error</th><th></th></tr></thead>
      <tbody>
        ${items.length === 0 && html`<tr><td colspan="9" class="muted">No jobs yet.</td></tr>`}
        ${items.map((job) => html`<${JobRow} key=${job.id} job=${job} indexName=${names[job.index_id]}
          onCancel=${cancel} open=${open === job.id} setOpen=${setOpen} />`)}
      </tbody>
    </table>
    ${openJob && html`<div class="card"><h4>Job ${openJob.id}</h4><${Json} value=${openJob} /></div>`}
    <div class="card">
      <h3>Eval: nDCG@10 per mode over time ${chosenIndex && html`<span class="muted">· ${chosenIndex.name}</span>`}</h3>
      <${EvalChart} runs=${evalRuns(items, indexId)} />
    </div>
  </section>`;
}
