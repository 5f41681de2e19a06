"""results.json -> markdown tables (pasted into FINDINGS.md)."""

import json
import sys
from pathlib import Path

res = json.load(open(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parent / "results.json")))


def cell(r: dict, key: str) -> str:
    v = r[key]
    if v["ndcg@10"] is None:
        return "not run"
    p = f" (p={v['p_ndcg@10']:.3g})" if "p_ndcg@10" in v else ""
    return f"{v['ndcg@10']:.4f}{p} / R {v['recall@100']:.4f}"


def settings(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "(service defaults)"


b = res["baseline"]
print("| method | settings chosen on dev | NFCorpus dev nDCG@10 / R@100 | NFCorpus test | SciFact test |")
print("|---|---|---|---|---|")
print(f"| baseline replica | {settings(b['settings'])} | {cell(b, 'dev')} | {cell(b, 'test')} | {cell(b, 'scifact')} |")
for name, m in res["methods"].items():
    c = m["chosen"]
    print(f"| {name} | {settings(c['settings'])} | {cell(c, 'dev')} | {cell(c, 'test')} | {cell(c, 'scifact')} |")
if "combination" in res:
    c = res["combination"]["chosen"]
    print(f"| **combination** | {settings(c['settings'])} | {cell(c, 'dev')} | {cell(c, 'test')} | {cell(c, 'scifact')} |")
print()
for name, m in res["methods"].items():
    print(f"### {name}: top of the dev grid ({len(m['grid'])} points)\n")
    for row in m["grid"][:8]:
        dev = row.pop("dev_ndcg@10")
        print(f"- {dev:.4f}  {settings(row)}")
    print()
if "combination" in res:
    print("### coordinate-ascent trace (dev)\n")
    for t in res["combination"]["trace"]:
        t = dict(t)
        print(f"- {t.pop('knob', 'start')}: {t.pop('dev'):.4f}  {settings(t)}")
