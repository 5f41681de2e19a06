"""A client generated from /openapi.json reads the service's real answers.

datamodel-code-generator turns the schema into pydantic models (as a client would generate
them); a realistic session then drives every /v1 operation, and each answer is validated,
strictly, against the generated model the schema names for its path, method and status.
An answer whose status the operation does not declare, or whose body the declared model
refuses (a required field missing, a wrong type), fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from types import ModuleType
from typing import Any, Union

import pytest
from datamodel_code_generator import DataModelType, Formatter, InputFileType, generate
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from rag_service.app import create_app
from rag_service.config import Settings
from rag_service.services.readiness import Readiness
from tests.conftest import Api, new_key

GENERATED = "openapi_client_models"
REF = "#/components/schemas/"
ERROR = REF + "ErrorBody"


@pytest.fixture(scope="module")
def openapi(tmp_path_factory) -> dict[str, Any]:
    """The schema as a client fetches it (no lifespan needed: the schema needs no stores)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("schema"), database_url="")
    response = TestClient(create_app(settings)).get("/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def client_models(openapi, tmp_path_factory) -> ModuleType:
    """Pydantic models of every schema component, generated and imported as a module."""
    path = tmp_path_factory.mktemp("client") / f"{GENERATED}.py"
    generate(json.dumps(openapi), input_file_type=InputFileType.OpenAPI, output=path,
             output_model_type=DataModelType.PydanticV2BaseModel, formatters=[Formatter.BUILTIN])
    spec = importlib.util.spec_from_file_location(GENERATED, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[GENERATED] = module  # pydantic resolves the models' forward references through it
    spec.loader.exec_module(module)
    yield module
    del sys.modules[GENERATED]


def v1_operations(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in openapi["paths"].items() if path.startswith("/v1/")
            for method in item}


def python_type(node: dict[str, Any], models: ModuleType) -> Any:
    """The generated type a response schema names: a component, a union of them, or a list."""
    if "$ref" in node:  # FastAPI may leave `type: object` beside the $ref; the $ref is the model
        name = node["$ref"].removeprefix(REF)
        assert hasattr(models, name), f"the generator made no model {name}"
        return getattr(models, name)
    if "anyOf" in node:
        options = tuple(python_type(option, models) for option in node["anyOf"])
        return Union[options]
    if node.get("type") == "array":
        return list[python_type(node["items"], models)]
    raise AssertionError(f"a JSON answer without a declared model: {node}")


def refs(node: Any) -> set[str]:
    """Names of the components a schema fragment refers to, at any depth."""
    if isinstance(node, dict):
        found = {node["$ref"].removeprefix(REF)} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def response_components(openapi: dict[str, Any]) -> set[str]:
    """Every component a /v1 response uses, directly or inside another."""
    schemas = openapi["components"]["schemas"]
    todo = refs([openapi["paths"][path][method.lower()]["responses"] for method, path in v1_operations(openapi)])
    found: set[str] = set()
    while todo:
        name = todo.pop()
        found.add(name)
        todo |= refs(schemas[name]) - found
    return found


class Contract:
    """Sends requests and checks every answer against its operation's declared response."""

    def __init__(self, api: Api, openapi: dict[str, Any], models: ModuleType) -> None:
        self.api, self.openapi, self.models = api, openapi, models
        self.seen: set[tuple[str, str]] = set()

    def call(self, method: str, template: str, status: int, *, key: str | None = None, anonymous: bool = False,
             **kw: Any) -> Any:
        url = template.format(**kw.pop("path", {}))
        if anonymous:
            response = getattr(self.api.client, method.lower())(url, **kw)
        else:
            headers = {"X-API-Key": key} if key else {}
            response = getattr(self.api, method.lower())(url, headers=headers, **kw)
        assert response.status_code == status, f"{method} {url}: {response.status_code} {response.text[:500]}"
        self.check(method, template, response)
        self.seen.add((method, template))
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response

    def check(self, method: str, template: str, response) -> None:
        where = f"{method} {template} {response.status_code}"
        declared = self.openapi["paths"][template][method.lower()]["responses"].get(str(response.status_code))
        assert declared is not None, f"{where}: the operation does not declare this status"
        content = declared.get("content") or {}
        if response.status_code == 204:
            assert not content and not response.content, where
            return
        media = response.headers["content-type"].split(";")[0].strip()
        assert media in content, f"{where}: answered {media}, declares {sorted(content)}"
        schema = content[media]["schema"]
        if media != "application/json":
            assert schema == {"type": "string"}, where
            return
        model = python_type(schema, self.models)
        try:
            TypeAdapter(model).validate_json(response.content, strict=True)
        except Exception as exc:
            raise AssertionError(f"{where}: the generated {model} refuses the answer: {exc}") from None


def test_every_v1_operation_declares_its_answers_and_errors(openapi):
    schemas = openapi["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's {"detail": [...]} is not what the service sends
    for method, path in sorted(v1_operations(openapi)):
        responses = openapi["paths"][path][method.lower()]["responses"]
        successes = {s: r for s, r in responses.items() if s.startswith("2")}
        assert successes, f"{method} {path} declares no 2xx answer"
        for status, answer in successes.items():
            content = answer.get("content") or {}
            assert content or status == "204", f"{method} {path} {status}: no content declared"
            for media, body in content.items():
                schema = body.get("schema") or {}
                ok = ("$ref" in schema or "anyOf" in schema or "$ref" in schema.get("items", {})
                      if media == "application/json" else schema == {"type": "string"})
                assert ok, f"{method} {path} {status} {media}: no model declared ({schema})"
        errors = [r["content"]["application/json"]["schema"].get("$ref") for s, r in responses.items()
                  if s[0] in "45" and "content" in r]
        assert ERROR in errors, f"{method} {path} declares no error with the shared ErrorBody"
    # Every response model (and every model inside one) lets fields be added beside the documented ones.
    answered = response_components(openapi)
    assert {"ErrorBody", "DocumentView", "SearchResponse", "ChunkHit", "Job", "RagStatus"} <= answered
    closed = sorted(name for name in answered if schemas[name].get("additionalProperties") is not True)
    assert not closed, f"response models that do not allow extra fields: {closed}"


@pytest.fixture
def session(app_factory, openapi, client_models):
    # Webhooks need a local receiver (private addresses allowed); a 1 MB upload limit makes 413 cheap.
    client, ctx = app_factory(webhook_allow_private=True, max_upload_mb=1)
    return Contract(Api(client, new_key(ctx)), openapi, client_models), ctx


def wait_for_job(c: Contract, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = c.call("GET", "/v1/rag/jobs/{job_id}", 200, path={"job_id": job_id})
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_real_answers_validate_against_the_generated_client(session, httpserver, openapi):
    c, ctx = session
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    assert c.api.client.get("/openapi.json").json() == openapi  # the client was generated from this app's schema

    # Probes and status (no key), and a value the stores can't hold.
    c.call("GET", "/v1/health", 200, anonymous=True)
    c.call("GET", "/v1/health", 422, anonymous=True, params={"q": "nul\x00"})
    c.call("GET", "/v1/ready", 200, anonymous=True)
    c.call("GET", "/v1/rag/status", 200, anonymous=True)
    c.call("GET", "/v1/indexes", 401, anonymous=True)
    c.call("GET", "/v1/rag/status", 401, key="rag_not-a-key")

    # Indexes.
    index = c.call("POST", "/v1/indexes", 201, json={"name": "contract", "description": "typed answers"})
    i = {"index_id": index["id"]}
    spare = c.call("POST", "/v1/indexes", 201, json={"name": "spare"})
    assert c.call("POST", "/v1/indexes", 409, json={"name": "contract"})["code"] == "conflict"
    c.call("GET", "/v1/indexes", 200)
    c.call("GET", "/v1/indexes/{index_id}", 200, path=i)
    c.call("PATCH", "/v1/indexes/{index_id}", 200, path=i, json={"description": "still typed"})
    c.call("GET", "/v1/indexes/{index_id}", 404, path={"index_id": "missing"})
    c.call("DELETE", "/v1/indexes/{index_id}", 204, path={"index_id": spare["id"]})

    # Uploads: created, unchanged, a stale if_version, a refused type, an empty file, too large.
    upload = "/v1/indexes/{index_id}/documents"
    text = b"# Herons\n\nHerons nest in colonies by the river and hunt fish in the shallows."
    doc = c.call("POST", upload, 201, path=i, files={"file": ("herons.md", text)}, data={"metadata": '{"year": 2026}'})
    d = {"document_id": doc["id"]}
    again = c.call("POST", upload, 200, path=i, files={"file": ("herons.md", text)}, data={"metadata": '{"year": 2026}'})
    assert again["unchanged"] is True
    stale = c.call("POST", upload, 409, path=i, files={"file": ("herons.md", b"new")}, data={"if_version": "7"})
    assert (stale["code"], stale["current_version"]) == ("version_conflict", 1)
    assert c.call("POST", upload, 415, path=i, files={"file": ("tool.exe", b"MZ")})["code"] == "unsupported_media_type"
    assert c.call("POST", upload, 422, path=i, files={"file": ("empty.txt", b"")})["code"] == "empty_document"
    c.call("POST", upload, 413, path=i, files={"file": ("big.txt", b"words " * 300_000)})
    c.call("POST", upload, 201, path=i, files={"file": ("herons.md", text + b"\n\nThey also eat frogs.")},
           data={"if_version": "1"})
    queued = c.call("POST", upload, 202, path=i, params={"async": "true"},
                    files={"file": ("otters.txt", b"Otters hold hands while they sleep on the water.")})
    assert wait_for_job(c, queued["id"])["status"] == "succeeded"

    batch = "/v1/indexes/{index_id}/documents/batch"
    c.call("POST", batch, 201, path=i, files=[("file", ("a.txt", b"Kingfishers dive for fish.")),
                                             ("file", ("b.txt", b"Cormorants dry their wings."))])
    mixed = c.call("POST", batch, 207, path=i, files=[("file", ("c.txt", b"Egrets wade in marshes.")),
                                                      ("file", ("d.exe", b"MZ"))])
    assert [item["status_code"] for item in mixed["items"]] == [201, 415]

    # Reads, versions and their text.
    c.call("GET", "/v1/indexes/{index_id}/documents", 200, path=i)
    listing = c.call("GET", "/v1/documents", 200)
    assert listing["total"] == 5 and listing["indexes_excluded"] == []
    c.call("GET", "/v1/documents/{document_id}", 200, path=d)
    c.call("GET", "/v1/indexes/{index_id}/documents/{document_id}", 200, path=i | d)
    named = i | {"name": "herons.md"}
    c.call("GET", "/v1/indexes/{index_id}/documents/by-name/{name}", 200, path=named)
    versions = c.call("GET", "/v1/indexes/{index_id}/documents/by-name/{name}/versions", 200, path=named)
    assert [v["version"] for v in versions["items"]] == [1, 2]
    c.call("GET", "/v1/documents/{document_id}/versions/{version}", 200, path=d | {"version": 1})
    detail = c.call("GET", "/v1/indexes/{index_id}/documents/{document_id}/versions/{version}", 200,
                    path=i | d | {"version": 2})
    assert detail["chunks"] and "frogs" in detail["text"]
    c.call("GET", "/v1/documents/{document_id}", 404, path={"document_id": "missing"})
    refused = c.call("GET", "/v1/documents/{document_id}", 403, path=d, params={"data_boundary": "global_public_only"})
    assert refused["code"] == "data_boundary_violation"

    # Search: chunks and documents, with evidence; a bad query.
    chunks = c.call("POST", "/v1/search", 200, json={"query": "where do herons nest", "rerank": False})
    assert chunks["results"] and chunks["results"][0]["document_name"] == "herons.md"
    documents = c.call("POST", "/v1/indexes/{index_id}/search", 200, path=i,
                       json={"query": "herons", "result_type": "document", "mode": "lexical"})
    assert documents["results"][0]["best_chunk"]["chunk_id"]
    assert c.call("POST", "/v1/search", 422, json={"query": " "})["field"] == "query"
    c.call("GET", "/v1/rag/evidence/{evidence_id}", 200, path={"evidence_id": chunks["evidence"]["evidence_id"]})
    c.call("GET", "/v1/rag/evidence/{evidence_id}", 404, path={"evidence_id": "missing"})

    # Jobs.
    evaluation = c.call("POST", "/v1/rag/jobs", 202, json={
        "job_class": "eval", "index_id": index["id"],
        "params": {"queries": {"q1": "heron colonies"}, "qrels": {"q1": {"herons.md": 1}}, "modes": ["lexical"]}})
    assert wait_for_job(c, evaluation["id"])["status"] == "succeeded"
    c.call("GET", "/v1/rag/jobs", 200)
    c.call("POST", "/v1/rag/jobs/{job_id}/cancel", 200, path={"job_id": evaluation["id"]})
    c.call("GET", "/v1/rag/jobs/{job_id}", 404, path={"job_id": "missing"})
    planned = c.call("POST", "/v1/rag/jobs", 501, json={"job_class": "graph_summary", "index_id": index["id"]})
    assert planned["code"] == "rag_job_runner_not_live"
    status = c.call("GET", "/v1/rag/status", 200)
    assert status["project"]["latest_eval"][index["id"]]["job_id"] == evaluation["id"]

    # Tools.
    c.call("GET", "/v1/tools/openai", 200)
    called = c.call("POST", "/v1/tools/call", 200, json={"id": "call_1", "type": "function", "function": {
        "name": "search", "arguments": json.dumps({"query": "herons"})}})
    assert called["tool_call_id"] == "call_1" and called["content"]["results"]
    c.call("POST", "/v1/tools/call", 404, json={"name": "no_such_tool"})

    # Keys and roles.
    reader = c.call("POST", "/v1/keys", 201, json={"role": "reader", "name": "contract reader"})
    c.call("GET", "/v1/keys", 200)
    assert c.call("POST", "/v1/indexes", 403, key=reader["key"], json={"name": "nope"})["required_role"] == "editor"
    c.call("GET", "/v1/keys", 403, key=reader["key"])
    c.call("DELETE", "/v1/keys/{key_id}", 200, path={"key_id": reader["id"]})
    c.call("GET", "/v1/indexes", 401, key=reader["key"])
    c.call("DELETE", "/v1/keys/{key_id}", 404, path={"key_id": "missing"})

    # Webhooks and their deliveries.
    hook = c.call("POST", "/v1/webhooks", 201, json={"url": httpserver.url_for("/hook"), "events": ["*"]})
    w = {"webhook_id": hook["id"]}
    c.call("GET", "/v1/webhooks", 200)
    c.call("GET", "/v1/webhooks/{webhook_id}", 200, path=w)
    c.call("PATCH", "/v1/webhooks/{webhook_id}", 200, path=w, json={"description": "contract"})
    c.call("POST", "/v1/webhooks/{webhook_id}/rotate-secret", 200, path=w)
    test = c.call("POST", "/v1/webhooks/{webhook_id}/test", 202, path=w)
    deadline = time.monotonic() + 60
    while c.call("GET", "/v1/webhooks/{webhook_id}/deliveries", 200, path=w,
                 params={"status": "succeeded"})["total"] == 0:
        assert time.monotonic() < deadline, "the test delivery never succeeded"
        time.sleep(0.1)
    c.call("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", 202,
           path=w | {"delivery_id": test["id"]})
    c.call("GET", "/v1/webhooks/{webhook_id}", 404, path={"webhook_id": "missing"})
    c.call("DELETE", "/v1/webhooks/{webhook_id}", 204, path=w)

    # The audit log (JSON and CSV) and the event stream.
    c.call("GET", "/v1/audit-log", 200)
    c.call("GET", "/v1/audit-log", 200, params={"format": "csv"})
    c.call("GET", "/v1/events", 200, params={"timeout_s": 0.3, "last_event_id": 0})

    # Deletes: soft, restore, hard (on both route families).
    soft = c.call("DELETE", "/v1/documents/{document_id}", 200, path=d)
    assert soft["deleted"] is True
    c.call("POST", "/v1/documents/{document_id}/restore", 200, path=d)
    c.call("DELETE", "/v1/indexes/{index_id}/documents/{document_id}", 200, path=i | d)
    c.call("POST", "/v1/indexes/{index_id}/documents/{document_id}/restore", 200, path=i | d)
    hard = c.call("DELETE", "/v1/indexes/{index_id}/documents/{document_id}", 200, path=i | d, params={"hard": "true"})
    assert hard["hard"] is True

    # Readiness while the warm-up has not finished (a Readiness that was never started).
    app = c.api.client.app
    started, app.state.readiness = app.state.readiness, Readiness(ctx)
    try:
        assert c.call("GET", "/v1/ready", 503, anonymous=True)["code"] == "not_ready"
    finally:
        app.state.readiness = started

    missed = v1_operations(openapi) - c.seen
    assert not missed, f"operations the session did not check: {sorted(missed)}"
