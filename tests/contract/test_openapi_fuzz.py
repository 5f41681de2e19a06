"""Schemathesis against our own OpenAPI schema: generated requests to every
operation (bounded examples) never get a 5xx, answer only statuses the operation
declares (its errors included: rag_service/api/schemas), and every answer matches the
declared model and media type. Runs on SQLite; the PostgreSQL paths are covered by
the API tests and tests/contract/test_openapi_client.py.

`positive_data_acceptance` is left out on purpose: data that is valid by schema can
still break a business rule (an unknown data_boundary).
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rag_service.app import create_app
from rag_service.config import Settings
from rag_service.context import build_context
from rag_service.services.auth import AuthService
from tests.contract.hostile import HOSTILE_JSON, HOSTILE_OBJECT

# Upload form fields that carry text (metadata JSON, the batch manifest, names, versions).
FORM_FIELDS = ("metadata", "manifest", "name", "if_version")
# ASCII only: the client encodes str fields as UTF-8, so a raw lone surrogate cannot be sent (json.dumps escapes it).
FORM_TEXT = HOSTILE_OBJECT.map(json.dumps) | HOSTILE_JSON.map(json.dumps) | st.sampled_from(["nul\x00", "9" * 5000])

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
# A stream that ends only when the client leaves (or at its timeout_s, which may be a day):
# its inputs are tested in tests/api/test_webhooks.py instead.
ENDLESS = {"GET /v1/events"}


@pytest.fixture(scope="module")
def service(tmp_path_factory, embedders):
    data_dir = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(data_dir=data_dir, database_url="", rate_limit_per_minute=0, parse_timeout_s=20)
    ctx = build_context(app_settings, embedders=embedders)
    app = create_app(app_settings, ctx=ctx)
    with TestClient(app) as client:  # runs the lifespan: app.state holds the context from here on
        # Fuzz a ready service: /v1/ready answers 503 while the encoder still loads.
        app.state.readiness.wait(120)
        key = AuthService(ctx.db).create_key("fuzz", "admin")[0]
        index = client.post("/v1/indexes", json={"name": "fuzz"}, headers={"X-API-Key": key}).json()
        client.post(f"/v1/indexes/{index['id']}/documents", headers={"X-API-Key": key},
                    files={"file": ("seed.txt", b"a seed document so searches have something to find")})
        yield app, key
    ctx.vectors.close()
    ctx.db.dispose()


def test_no_server_errors_and_schema_conformance(service):
    """Every operation, a bounded number of generated examples each (derandomized, so a
    CI failure reproduces); all failures are reported together."""
    app, key = service
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @api_schema.hook
    def flatmap_body(ctx, body):
        """Schemathesis draws form fields as schema-valid text only: give upload forms the value
        classes of tests/contract/hostile.py too (as JSON text: NaN, 2^63, escaped lone surrogates)."""
        forms = ctx.operation is not None and any(b.media_type == "multipart/form-data" for b in ctx.operation.body)
        if not forms or not isinstance(body, dict):
            return st.just(body)
        names = sorted({k for k, v in body.items() if isinstance(v, str)} | set(FORM_FIELDS))
        return st.dictionaries(st.sampled_from(names), FORM_TEXT, max_size=2).map(lambda extra: {**body, **extra})

    failures: dict[str, str] = {}
    succeeded: set[str] = set()  # operations that answered 2xx at least once: the fuzzing got past auth
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        if operation.label in ENDLESS:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def exercise(case):
            # Schemathesis's ASGI client starts the app's lifespan again, which starts a new
            # warm-up (now over the seeded index): fuzz the ready service, not its loading 503.
            assert app.state.readiness.wait(120)
            response = case.call_and_validate(headers={"X-API-Key": key}, checks=CHECKS)
            if response.status_code < 300:
                succeeded.add(operation.label)

        try:
            exercise()
        except Exception as exc:  # keep going: one report for every operation that fails
            failures[operation.label] = str(exc)[:2000]
    assert operations >= 30
    assert {"GET /v1/indexes", "GET /v1/documents", "GET /v1/keys", "GET /v1/rag/jobs"} <= succeeded, sorted(succeeded)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
