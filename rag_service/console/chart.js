// The eval chart: nDCG@10 per retrieval mode over time, from the results of succeeded eval
// jobs, drawn with the vendored uPlot.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

import { fmtTime, html } from "./ui.js";

export const MODES = ["dense", "lexical", "hybrid"];
const COLOURS = { dense: "#2f6fdf", lexical: "#d9822b", hybrid: "#1d9a6c" };

/** Eval runs of one index (or all), oldest first: {job, at (unix s), scores {mode: nDCG@10 | null}}. */
export function evalRuns(jobs, indexId) {
  return jobs
    .filter((j) => j.job_class === "eval" && j.status === "succeeded" && j.result?.modes)
    .filter((j) => !indexId || j.index_id === indexId)
    .map((j) => ({
      job: j,
      at: new Date(j.finished_at || j.updated_at).getTime() / 1000,
      scores: Object.fromEntries(MODES.map((m) => [m, j.result.modes[m]?.["ndcg@10"] ?? null])),
    }))
    .sort((a, b) => a.at - b.at);
}

export function EvalChart({ runs }) {
  const target = useRef(null);
  useEffect(() => {
    if (!target.current || runs.length === 0) return undefined;
    const data = [runs.map((r) => r.at), ...MODES.map((m) => runs.map((r) => r.scores[m]))];
    // From the runs themselves, a little wider: uPlot widens a single point to years.
    const first = data[0][0];
    const last = data[0][data[0].length - 1];
    const pad = Math.max(1, (last - first) * 0.1);
    const plot = new uPlot({
      width: Math.max(320, Math.min(target.current.clientWidth || 720, 960)),
      height: 260,
      scales: { x: { time: true, range: () => [first - pad, last + pad] }, y: { range: [0, 1.05] } },
      legend: { live: false },
      series: [{ label: "finished" }, ...MODES.map((m) => ({
        // hybrid dashed: where it equals dense (often), dense still shows between the dashes
        label: m, stroke: COLOURS[m], width: 2, dash: m === "hybrid" ? [8, 5] : undefined,
        points: { show: true, size: 7, fill: COLOURS[m] },
        value: (_, v) => (v === null || v === undefined ? "—" : v.toFixed(4)),
      }))],
      axes: [{}, { label: "nDCG@10" }],
    }, data, target.current);
    return () => plot.destroy();
  }, [runs.map((r) => `${r.job.id}`).join(",")]);

  if (runs.length === 0) {
    return html`<p class="muted">No succeeded eval job for this index yet: submit one above.</p>`;
  }
  return html`<div>
    <div ref=${target} class="chart" data-testid="eval-chart" aria-label="nDCG@10 per mode over time"></div>
    <table class="data compact" aria-label="Eval runs">
      <thead><tr><th>Finished</th><th>Job</th>${MODES.map((m) => html`<th key=${m} class="num">${m} nDCG@10</th>`)}</tr></thead>
      <tbody>${runs.map((r) => html`<tr key=${r.job.id}>
        <td>${fmtTime(r.job.finished_at)}</td><td class="mono">${r.job.id.slice(0, 8)}</td>
        ${MODES.map((m) => html`<td key=${m} class="num">${r.scores[m] === null ? "—" : r.scores[m].toFixed(4)}</td>`)}
      </tr>`)}</tbody>
    </table>
  </div>`;
}
