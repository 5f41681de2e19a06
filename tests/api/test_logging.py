"""Structured logs: JSON lines carrying the request id, never a key, a query or document text."""

import io
import json
import logging

from rag_service.logs import JsonFormatter, redact
from tests.conftest import Api, new_key


def test_json_logs_carry_request_ids_and_no_secrets(app_factory):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        client, ctx = app_factory()
        api = Api(client, new_key(ctx))
        index_id = api.create_index()["id"]
        upload = api.upload(index_id, "secret-plan.txt", b"The quartz-heron protocol launches at dawn.")
        search = api.search("quartz-heron launch time", index_id)
        missing = api.get("/v1/documents/nope", headers={"X-Request-ID": "trace-abc.123"})
        bad_key = client.get("/v1/indexes", headers={"X-API-Key": "rag_" + "x" * 43})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    output = stream.getvalue()
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [e for e in entries if e["logger"] == "rag_service.access"]
    assert {e["request_id"] for e in access} >= {upload.headers["X-Request-ID"], search.headers["X-Request-ID"],
                                                 "trace-abc.123"}
    by_id = {e["request_id"]: e for e in access}
    assert by_id["trace-abc.123"]["status"] == 404 and by_id["trace-abc.123"]["route"] == "/v1/documents/{document_id}"
    assert by_id[upload.headers["X-Request-ID"]]["key_id"]  # who, by key id
    assert bad_key.status_code == 401
    for secret in (api.key, "x" * 43, "quartz-heron", "secret-plan", "launches at dawn"):
        assert secret not in output


def test_redaction_and_request_id_hygiene(api):
    assert redact("key=rag_" + "A" * 43 + " done") == "key=rag_*** done"
    r = api.get("/v1/indexes", headers={"X-Request-ID": "bad id\nwith newline"})
    assert r.headers["X-Request-ID"] != "bad id\nwith newline" and len(r.headers["X-Request-ID"]) == 32
