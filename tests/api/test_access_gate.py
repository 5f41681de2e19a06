"""The access gate (rag_service/services/access.py) at every entry point.

A request whose data_boundary may not read an index's privacy_tier is refused with 403
`data_boundary_violation` wherever it comes in (uploads sync and async, reads by id and by
name, versions, deletes, restores, searches, jobs, tools, MCP), the refusal is in the audit
log, and nothing else is left behind: no document, version, chunk, upload blob, job,
evidence row or vector point.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import func
from sqlmodel import select

from rag_service.app import create_app
from rag_service.context import build_context
from rag_service.models import AuditLog, Chunk, Document, DocumentVersion, Evidence, Index, Job, Project, UploadBlob
from rag_service.services.job_handlers import build_job_runner
from tests.api.test_rag import wait_job
from tests.conftest import Api, new_key

G = "global_public_only"
SECRET = b"The vault holds the quarterly salary ledger of the northern office."


def footprint(ctx) -> tuple[dict[str, int], list[str]]:
    """Row counts of everything a request could leave behind, points included, and the audit actions."""
    with ctx.db.session() as s:
        counts = {m.__name__: s.exec(select(func.count()).select_from(m)).one()
                  for m in (Document, DocumentVersion, Chunk, UploadBlob, Job, Evidence)}
        actions = list(s.exec(select(AuditLog.action).order_by(AuditLog.id)).all())
        collections = list(s.exec(select(Index.collection)).all())
    counts["points"] = sum(ctx.vectors.count(c) for c in collections)
    return counts, actions


def refused(ctx, response, before) -> dict:
    """The response is a boundary refusal that wrote exactly one audit row and nothing else."""
    counts, actions = before
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "data_boundary_violation" and body["data_boundary"] == G, body
    after_counts, after_actions = footprint(ctx)
    assert after_counts == counts, "a refused request left rows or points behind"
    assert after_actions[len(actions):] == ["boundary.refused"], after_actions[len(actions):]
    return body


@pytest.fixture
def vault(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("vault", privacy_tier="private")["id"]
    doc = api.upload(index, "ledger.txt", SECRET)
    assert doc.status_code == 201, doc.text
    return api, ctx, index, doc.json()["id"]


def test_every_entry_point_refuses_a_boundary_that_may_not_read_the_index(vault):
    api, ctx, index, doc = vault
    header = {"X-Data-Boundary": G}
    new_file = {"file": ("new.txt", b"Fresh private text that must never be stored under this boundary.")}
    calls = {
        "sync upload, header": lambda: api.post(f"/v1/indexes/{index}/documents", files=new_file, headers=header),
        "sync upload, form field": lambda: api.post(f"/v1/indexes/{index}/documents", files=new_file,
                                                    data={"data_boundary": G}),
        "sync upload, query": lambda: api.post(f"/v1/indexes/{index}/documents", files=new_file,
                                               params={"data_boundary": G}),
        "sync upload by index name": lambda: api.post("/v1/indexes/vault/documents", files=new_file, headers=header),
        "new version of an existing name": lambda: api.post(f"/v1/indexes/{index}/documents", headers=header,
                                                            files={"file": ("ledger.txt", b"A changed ledger.")}),
        "async upload": lambda: api.post(f"/v1/indexes/{index}/documents", files=new_file, headers=header,
                                         params={"async": "true"}),
        "index document list": lambda: api.get(f"/v1/indexes/{index}/documents", headers=header),
        "document by id": lambda: api.get(f"/v1/documents/{doc}", headers=header),
        "document by id in its index": lambda: api.get(f"/v1/indexes/{index}/documents/{doc}", headers=header),
        "document by name": lambda: api.get(f"/v1/indexes/{index}/documents/by-name/ledger.txt", headers=header),
        "versions by name": lambda: api.get(f"/v1/indexes/{index}/documents/by-name/ledger.txt/versions",
                                            params={"data_boundary": G}),
        "version text": lambda: api.get(f"/v1/documents/{doc}/versions/1", headers=header),
        "version text in its index": lambda: api.get(f"/v1/indexes/{index}/documents/{doc}/versions/1", headers=header),
        "soft delete": lambda: api.delete(f"/v1/documents/{doc}", headers=header),
        "hard delete": lambda: api.delete(f"/v1/indexes/{index}/documents/{doc}", params={"hard": "true"},
                                          headers=header),
        "restore": lambda: api.post(f"/v1/documents/{doc}/restore", headers=header),
        "restore in its index": lambda: api.post(f"/v1/indexes/{index}/documents/{doc}/restore", headers=header),
        "search in the index": lambda: api.search("salary ledger", index, data_boundary=G),
        "search naming the index": lambda: api.post("/v1/search", headers=header,
                                                    json={"query": "salary ledger", "index_ids": ["vault"]}),
        "job": lambda: api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": index}, headers=header),
        "tool get_document by id": lambda: api.post("/v1/tools/call", json={
            "name": "get_document", "arguments": {"document_id": doc, "data_boundary": G}}),
        "tool get_document by name": lambda: api.post("/v1/tools/call", headers=header, json={
            "name": "get_document", "arguments": {"index_id": "vault", "name": "ledger.txt"}}),
        "tool search": lambda: api.post("/v1/tools/call", headers=header, json={
            "name": "search", "arguments": {"query": "salary", "index_ids": [index]}}),
    }
    for label, call in calls.items():
        before = footprint(ctx)
        body = refused(ctx, call(), before)
        assert "salary" not in str(body) and "ledger of" not in str(body), label
        assert body["indexes_excluded"] == [{"index_id": index, "privacy_tier": "private"}], label
    log = api.get("/v1/audit-log", params={"action": "boundary.refused", "per_page": 100}).json()
    assert log["total"] == len(calls)
    assert all(row["detail"]["data_boundary"] == G and row["detail"]["privacy_tiers"] == ["private"]
               for row in log["items"])
    # Nothing was changed by any of them: still one live version 1 under the default boundary.
    current = api.get(f"/v1/documents/{doc}").json()
    assert current["latest_version"] == 1 and not current["deleted"]
    assert api.get(f"/v1/indexes/{index}/documents").json()["total"] == 1


def test_boundaries_that_may_read_the_tier_are_let_through(vault):
    api, ctx, index, doc = vault
    r = api.post(f"/v1/indexes/{index}/documents", files={"file": ("memo.txt", b"A private memo about parking.")},
                 headers={"X-Data-Boundary": "private_supercomputer"})
    assert r.status_code == 201, r.text
    assert api.get(f"/v1/documents/{doc}", params={"data_boundary": "private_supercomputer"}).status_code == 200
    assert api.get(f"/v1/indexes/vault/documents/by-name/ledger.txt").json()["id"] == doc  # index by name


def test_project_listing_skips_indexes_the_boundary_may_not_read(vault):
    api, ctx, index, doc = vault
    public = api.create_index("handbook", privacy_tier="public")["id"]
    shared = api.upload(public, "welcome.txt", b"Welcome to the public handbook of the office.").json()["id"]
    everything = api.get("/v1/documents").json()
    assert {d["id"] for d in everything["items"]} == {doc, shared} and everything["indexes_excluded"] == []
    listed = api.get("/v1/documents", headers={"X-Data-Boundary": G}).json()
    assert [d["id"] for d in listed["items"]] == [shared] and listed["total"] == 1
    assert listed["data_boundary"] == G
    assert listed["indexes_excluded"] == [{"index_id": index, "privacy_tier": "private"}]


def test_personal_index_needs_the_projects_account(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    diary = api.create_index("diary", privacy_tier="personal")["id"]
    with ctx.db.session() as s:
        project = s.exec(select(Project)).one()
        project.account_id = "acct-42"
        s.add(project)
        s.commit()
    sync = {"X-Data-Boundary": "account_supercomputer_sync"}
    page = {"file": ("day.txt", b"Dear diary, today the heron came back to the pond.")}
    for account in (None, "acct-7"):
        data = {"account_id": account} if account else {}
        r = api.post(f"/v1/indexes/{diary}/documents", files=page, data=data, headers=sync)
        assert r.status_code == 403 and r.json()["code"] == "data_boundary_violation", r.text
    r = api.post(f"/v1/indexes/{diary}/documents", files=page, data={"account_id": "acct-42"}, headers=sync)
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    assert api.get(f"/v1/documents/{doc}", headers=sync).status_code == 403
    assert api.get(f"/v1/documents/{doc}", headers=sync, params={"account_id": "acct-42"}).status_code == 200


def test_header_and_body_naming_different_boundaries_is_refused(vault):
    """A gateway that pins X-Data-Boundary cannot be overridden by a body field an agent writes."""
    api, ctx, index, doc = vault
    r = api.post(f"/v1/indexes/{index}/search", json={"query": "salary", "data_boundary": "computer"},
                 headers={"X-Data-Boundary": G})
    assert r.status_code == 422 and r.json()["field"] == "data_boundary"
    r = api.post("/v1/tools/call", headers={"X-Data-Boundary": G}, json={
        "name": "get_document", "arguments": {"document_id": doc, "data_boundary": "computer"}})
    assert r.status_code == 422 and r.json()["field"] == "data_boundary"
    r = api.post(f"/v1/indexes/{index}/documents", files={"file": ("x.txt", b"some words here")},
                 data={"data_boundary": "computer"}, headers={"X-Data-Boundary": G})
    assert r.status_code == 422 and r.json()["field"] == "data_boundary"
    # The same value twice is one boundary.
    r = api.post("/v1/search", json={"query": "salary", "data_boundary": G}, headers={"X-Data-Boundary": G})
    assert r.status_code == 200 and r.json()["evidence"]["indexes_excluded"][0]["index_id"] == index


def test_refused_async_upload_stores_nothing_and_the_retry_indexes(vault):
    """The old order committed the version and its bytes, then the job's boundary check refused:
    the retry of the same bytes answered "unchanged" with no job, pending forever."""
    api, ctx, index, _ = vault
    plan = {"file": ("plan.txt", b"The relocation plan moves the archive to the east wing in spring.")}
    before = footprint(ctx)
    r = api.post(f"/v1/indexes/{index}/documents", files=plan, params={"async": "true"}, headers={"X-Data-Boundary": G})
    refused(ctx, r, before)
    retry = api.post(f"/v1/indexes/{index}/documents", files=plan, params={"async": "true"})
    assert retry.status_code == 202, retry.text
    assert wait_job(api, retry.json()["id"])["status"] == "succeeded"
    doc = api.get(f"/v1/indexes/{index}/documents/by-name/plan.txt").json()
    assert doc["status"] == "ready" and doc["current_version"] == 1


def test_pending_version_without_a_job_does_not_make_a_retry_unchanged(app_factory):
    client, ctx = app_factory(job_runner="off")
    api = Api(client, new_key(ctx))
    index = api.create_index("plans")["id"]
    plan = {"file": ("plan.txt", b"The relocation plan moves the archive to the east wing in spring.")}
    first = api.post(f"/v1/indexes/{index}/documents", files=plan, params={"async": "true"})
    assert first.status_code == 202, first.text
    queued_retry = api.post(f"/v1/indexes/{index}/documents", files=plan, params={"async": "true"})
    assert queued_retry.status_code == 200 and queued_retry.json()["unchanged"]  # its job will index it
    api.post(f"/v1/rag/jobs/{first.json()['id']}/cancel")  # now nothing will ever index version 1
    retry = api.post(f"/v1/indexes/{index}/documents", files=plan, params={"async": "true"})
    assert retry.status_code == 202, retry.text
    runner = build_job_runner(ctx)
    while runner.run_once():
        pass
    doc = api.get(f"/v1/indexes/{index}/documents/by-name/plan.txt").json()
    assert doc["status"] == "ready" and doc["current_version"] == retry.json()["document"]["version"]


def test_nfd_and_nfc_spellings_name_one_document(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    nfd, nfc = unicodedata.normalize("NFD", "café.txt"), unicodedata.normalize("NFC", "café.txt")
    assert nfd != nfc
    index = api.create_index("recettes")["id"]
    first = api.upload(index, nfd, b"Un cafe noir, sans sucre, tous les matins.")
    assert first.status_code == 201 and first.json()["name"] == nfc
    second = api.upload(index, nfc, b"Un cafe au lait le dimanche seulement.")
    assert second.json()["id"] == first.json()["id"] and second.json()["version"] == 2
    for spelling in (nfd, nfc):
        r = api.get(f"/v1/indexes/{index}/documents/by-name/{quote(spelling)}")
        assert r.status_code == 200 and r.json()["id"] == first.json()["id"], spelling
        versions = api.get(f"/v1/indexes/{index}/documents/by-name/{quote(spelling)}/versions").json()
        assert [v["version"] for v in versions["items"]] == [1, 2]
        assert api.get("/v1/documents", params={"name_prefix": spelling.removesuffix(".txt")}).json()["total"] == 1


def test_index_names_are_stored_in_nfc_and_found_by_either_spelling(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    nfd, nfc = unicodedata.normalize("NFD", "Recettes été"), unicodedata.normalize("NFC", "Recettes été")
    index = api.create_index(nfd)
    assert index["name"] == nfc
    assert api.post("/v1/indexes", json={"name": nfc}).status_code == 409  # one name, two spellings
    doc = api.upload(index["id"], "pain.txt", b"Le pain se leve lentement la nuit.").json()
    for spelling in (nfd, nfc):
        r = api.get(f"/v1/indexes/{quote(spelling)}/documents/by-name/pain.txt")
        assert r.status_code == 200 and r.json()["id"] == doc["id"], spelling


def test_refusals_over_mcp_are_errors_and_audited(settings_factory, embedders):
    ctx = build_context(settings_factory(), embedders=embedders)
    admin, reader = new_key(ctx, role="admin"), new_key(ctx, role="reader")

    async def scenario():
        app = create_app(ctx.settings, ctx=ctx)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                headers={"X-API-Key": admin}) as plain:
            index = (await plain.post("/v1/indexes", json={"name": "vault", "privacy_tier": "private"})).json()["id"]
            doc = (await plain.post(f"/v1/indexes/{index}/documents", files={"file": ("ledger.txt", SECRET)})).json()["id"]
            for headers, arguments in (
                ({}, {"document_id": doc, "data_boundary": G}),
                ({"X-Data-Boundary": G}, {"document_id": doc}),  # the HTTP request's boundary applies
            ):
                http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://testserver",
                                          headers={"X-API-Key": reader, **headers})
                async with http, streamable_http_client("http://testserver/mcp", http_client=http) as (read, write), \
                        ClientSession(read, write) as session:
                    await session.initialize()
                    before = footprint(ctx)
                    result = await session.call_tool("get_document", arguments)
                    assert result.is_error and result.structured_content["code"] == "data_boundary_violation"
                    assert "salary" not in result.content[0].text
                    counts, actions = footprint(ctx)
                    assert counts == before[0] and actions[len(before[1]):] == ["boundary.refused"]
            allowed = await plain.post("/v1/tools/call", json={"name": "get_document", "arguments": {"document_id": doc}})
            assert allowed.status_code == 200 and "salary" in allowed.json()["content"]["text"]

    try:
        anyio.run(scenario)
    finally:
        ctx.vectors.close()
        ctx.db.dispose()


def test_index_routes_jobs_and_searches_take_an_index_name(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("field-notes")["id"]
    assert api.upload("field-notes", "otters.txt", b"Otters crack shellfish open on their bellies.").status_code == 201
    assert api.get("/v1/indexes/field-notes").json()["id"] == index
    assert api.patch("/v1/indexes/field-notes", json={"description": "notes"}).json()["description"] == "notes"
    hits = api.search("otters shellfish", "field-notes").json()["results"]
    assert hits and hits[0]["index_id"] == index
    job = api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": "field-notes"}).json()
    assert job["index_id"] == index
    other = Api(client, new_key(ctx, project="elsewhere"))
    assert other.get("/v1/indexes/field-notes").status_code == 404  # names are per project
    assert api.delete("/v1/indexes/field-notes").status_code == 204
    assert api.get(f"/v1/indexes/{index}").status_code == 404
