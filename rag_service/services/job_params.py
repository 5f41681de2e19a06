"""Each job class's params, checked when the job is submitted: a bad mode or a malformed
eval set is a 422 at once, never a job that "succeeds" on nonsense or fails later.
The handlers (job_handlers.py, reindex.py) read the same keys."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic import ValidationError as PydanticValidationError

from pipelines.chunk import MAX_CHUNK_CHARACTERS, MIN_CHUNK_CHARACTERS
from rag_service.errors import PermanentJobError, ValidationFailed
from rag_service.search_params import Fusion, FusionWeights, LexicalUnit, Mode, RrfK

Seconds = Annotated[float, Field(ge=0, le=100 * 365 * 24 * 3600, allow_inf_nan=False)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestParams(_Params):
    version_id: str = Field(max_length=200)
    document_id: str | None = Field(None, max_length=200)


class EvalSet(_Params):
    """BEIR-style labelled queries: inline, or the text of queries.jsonl and qrels/*.tsv."""

    queries: dict[str, str] | list[dict[str, Any]] | None = None
    queries_jsonl: str | None = None
    qrels: dict[str, dict[str, StrictInt]] | None = None
    qrels_tsv: str | None = None


class EvalParams(EvalSet):
    modes: list[Mode] | None = Field(None, min_length=1, max_length=3)
    top_k: StrictInt = Field(100, ge=1, le=1000)


class ReconcileParams(_Params):
    stuck_after_seconds: Seconds = 300


class PurgeParams(_Params):
    older_than_seconds: Seconds = 30 * 24 * 3600
    retain_versions: StrictInt | None = Field(None, ge=1, le=1_000_000)


class ReindexParams(_Params):
    embedding_model: str | None = Field(None, min_length=1, max_length=500)
    chunk_max_characters: StrictInt | None = Field(None, ge=MIN_CHUNK_CHARACTERS, le=MAX_CHUNK_CHARACTERS)
    chunk_overlap: StrictInt | None = Field(None, ge=0, le=MAX_CHUNK_CHARACTERS)
    max_ndcg_drop: float = Field(0.01, ge=-1, le=1, allow_inf_nan=False)
    # The encoder the rebuilt collection gets (services/reindex.py); `auto` decides on this machine.
    embedding_backend: Literal["auto", "torch", "onnx"] | None = None
    embedding_precision: Literal["auto", "fp32", "bf16", "int8"] | None = None
    # Latency gate: new p95 <= old p95 * max_latency_ratio + latency_slack_ms.
    max_latency_ratio: float = Field(1.5, ge=0, le=1000, allow_inf_nan=False)
    latency_slack_ms: float = Field(5.0, ge=0, le=60000, allow_inf_nan=False)
    # Each eval query runs this many times on old and new, interleaved; its latency is the median.
    latency_rounds: StrictInt = Field(3, ge=1, le=20)
    modes: list[Mode] | None = Field(None, min_length=1, max_length=3)
    eval: EvalSet | None = None
    rollback: bool = False
    # How the new collection is built (default: as new indexes are, RAG_TITLE_VECTORS and
    # RAG_DOCUMENT_BM25): the way an index from before these features gets them.
    title_vectors: bool | None = None
    document_bm25: bool | None = None


def parse_eval_set(params: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(queries {id: text}, qrels {query_id: {document_name: relevance}}) from inline params or BEIR
    text (queries_jsonl, qrels_tsv); PermanentJobError when there is nothing to judge."""

    queries = params.get("queries")
    qrels = params.get("qrels")
    if queries is None and params.get("queries_jsonl"):
        queries = [json.loads(line) for line in params["queries_jsonl"].splitlines() if line.strip()]
    if qrels is None and params.get("qrels_tsv"):
        qrels = {}
        for line in params["qrels_tsv"].splitlines():
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
    if isinstance(queries, list):
        queries = {str(q["_id"]): q["text"] for q in queries}
    if not isinstance(queries, dict) or not isinstance(qrels, dict) or not queries or not qrels:
        raise PermanentJobError("eval needs params.queries ({id: text} or [{_id, text}]) or queries_jsonl, "
                                "and params.qrels ({query_id: {document_name: relevance}}) or qrels_tsv")
    queries = {str(k): str(v) for k, v in queries.items() if str(k) in qrels}
    if not queries:
        raise PermanentJobError("no query has relevance judgements in qrels")
    return queries, {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()}


Bm25K1 = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)]
Bm25B = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class TuneGrid(_Params):
    """The settings a tune job tries (job_handlers/tune.py settings_grid): every mode x prf; for
    lexical and hybrid every lexical_unit; for hybrid every fusion, with rrf_k x fusion_weights
    for rrf and zscore_weights for zscore. Then (job_handlers/tune_bm25.py) the settings the index
    will run after that round, if they have a lexical side, with every bm25_k1 x bm25_b on a
    shadow copy of the index (an empty list skips that round)."""

    modes: list[Mode] = Field(["hybrid", "dense", "lexical"], min_length=1, max_length=3)
    rrf_k: list[RrfK] = Field([20, 60, 120], min_length=1, max_length=8)
    fusion_weights: list[FusionWeights] = Field([[1.0, 1.0], [1.0, 1.5], [1.5, 1.0], [1.0, 2.0], [2.0, 1.0]],
                                                min_length=1, max_length=10)
    fusion: list[Fusion] = Field(["zscore", "rrf"], min_length=1, max_length=2)
    zscore_weights: list[FusionWeights] = Field([[0.6, 0.4], [0.5, 0.5], [0.7, 0.3]], min_length=1, max_length=10)
    prf: list[StrictBool] = Field([True, False], min_length=1, max_length=2)
    # "document" is tried only on an index with document points (else it is chunk BM25 anyway).
    lexical_unit: list[LexicalUnit] = Field(["document", "chunk"], min_length=1, max_length=2)
    # BM25 of the unit that setting searches (chunk points, or document points). The service's
    # defaults are k1 1.2 / b 0.75 for chunks and 0.6 / 0.2 for documents: both are in the grid.
    bm25_k1: list[Bm25K1] = Field([0.6, 0.9, 1.2, 1.6], max_length=6)
    bm25_b: list[Bm25B] = Field([0.2, 0.4, 0.75], max_length=6)


class TuneParams(EvalSet):
    grid: TuneGrid = Field(default_factory=TuneGrid)
    metric: Literal["ndcg@10", "recall@100", "mrr@10"] = "ndcg@10"
    # The winner replaces the index's defaults only if ranx's paired t-test against them gives p below this.
    alpha: float = Field(0.05, gt=0, le=0.5, allow_inf_nan=False)
    top_k: StrictInt = Field(100, ge=10, le=1000)


PARAMS: dict[str, type[_Params]] = {"ingest": IngestParams, "eval": EvalParams, "reconcile": ReconcileParams,
                                     "purge": PurgeParams, "reindex": ReindexParams, "tune": TuneParams}


def _eval_set(params: dict[str, Any], field: str) -> None:
    """The eval set parses into at least one judged query (the parser the handlers use)."""
    try:
        parse_eval_set(params)
    except PermanentJobError as exc:
        raise ValidationFailed(str(exc), field=field) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a bad queries_jsonl line or qrels_tsv score
        raise ValidationFailed(f"{field}: the eval set does not parse: {type(exc).__name__}: {exc}"[:500],
                               field=field) from None


def validate_params(job_class: str, params: dict[str, Any]) -> None:
    model = PARAMS.get(job_class)
    if model is None:
        return
    try:
        model.model_validate(params)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(["params", *(str(x) for x in first["loc"])])
        raise ValidationFailed(f"{field}: {first['msg']}", field=field) from None
    if job_class in ("eval", "tune"):
        _eval_set(params, "params")
    elif job_class == "reindex" and params.get("eval") is not None:
        _eval_set(params["eval"], "params.eval")
