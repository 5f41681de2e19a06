"""POST /v1/indexes/{id}/documents/batch: one item per file, each as a single upload would answer."""

import json


def _batch(api, index_id, files, manifest=None, params=None, **form):
    data = dict(form)
    if manifest is not None:
        data["manifest"] = json.dumps(manifest)
    parts = [("file", (name, content)) for name, content in files]
    return api.post(f"/v1/indexes/{index_id}/documents/batch", files=parts, data=data, params=params or {})


def test_batch_answers_one_item_per_file_in_order(api):
    index = api.create_index()
    files = [(f"note-{n}.md", f"# Note {n}\n\nThe heron number {n} nests by the weir.".encode()) for n in range(6)]
    r = _batch(api, index["id"], files, manifest={"note-2.md": {"name": "renamed", "metadata": {"year": 2026}}})
    assert r.status_code == 201, r.text
    items = r.json()["items"]
    assert [i["filename"] for i in items] == [f for f, _ in files]
    assert all(i["status_code"] == 201 and i["status"] == "ready" and i["version"] == 1 and i["chunks_embedded"] >= 1 for i in items)
    assert items[2]["name"] == "renamed" and items[2]["metadata"] == {"year": 2026}
    # Each item is what a single upload answers: the same fields.
    single = api.upload(index["id"], "single.md", b"# Single\n\nA kingfisher dives.").json()
    assert set(single) <= set(items[0])
    listed = api.get(f"/v1/indexes/{index['id']}/documents", params={"per_page": 50}).json()
    assert listed["total"] == 7
    hits = api.search("heron number 4 weir", index["id"], mode="lexical").json()["results"]
    assert hits and hits[0]["document_name"] == "note-4.md"


def test_batch_mixes_outcomes_with_207_and_single_upload_codes(api):
    index = api.create_index()
    api.upload(index["id"], "kept.md", b"# Kept\n\nUnchanged text.")
    files = [("kept.md", b"# Kept\n\nUnchanged text."), ("bad.exe", b"MZ binary"), ("empty.txt", b""),
             ("conflict.md", b"# C\n\nText."), ("fine.txt", b"Plain words about otters.")]
    manifest = [{}, {}, {}, {"if_version": 3}, {"metadata": {"k": "v"}}]
    r = _batch(api, index["id"], files, manifest=manifest)
    assert r.status_code == 207, r.text
    by_name = {i["filename"]: i for i in r.json()["items"]}
    assert by_name["kept.md"]["status_code"] == 200 and by_name["kept.md"]["unchanged"] is True
    assert (by_name["bad.exe"]["status_code"], by_name["bad.exe"]["code"]) == (415, "unsupported_media_type")
    assert (by_name["empty.txt"]["status_code"], by_name["empty.txt"]["code"]) == (422, "empty_document")
    conflict = by_name["conflict.md"]
    assert (conflict["status_code"], conflict["code"], conflict["current_version"]) == (409, "version_conflict", 0)
    assert by_name["fine.txt"]["status_code"] == 201 and by_name["fine.txt"]["metadata"] == {"k": "v"}
    assert r.json()["failed"] == 3
    # Nothing of the failed files was written.
    names = {d["name"] for d in api.get(f"/v1/indexes/{index['id']}/documents").json()["items"]}
    assert names == {"kept.md", "fine.txt"}


def test_same_name_twice_in_one_batch_gives_versions_in_order(api):
    index = api.create_index()
    files = [("plan.txt", b"The meeting is on Monday."), ("plan.txt", b"The meeting moved to Friday.")]
    r = _batch(api, index["id"], files)
    assert r.status_code == 201, r.text
    assert [i["version"] for i in r.json()["items"]] == [1, 2]
    doc = api.get(f"/v1/indexes/{index['id']}/documents/by-name/plan.txt").json()
    assert doc["current_version"] == 2


def test_bad_manifest_is_422_and_writes_nothing(api):
    index = api.create_index()
    for manifest, field in (([{}], "manifest"), ({"other.txt": {}}, "manifest"),
                            ([{"nme": "typo"}, {}], "manifest[0]"), ([{"metadata": [1]}, {}], "manifest[0].metadata")):
        r = _batch(api, index["id"], [("a.txt", b"alpha"), ("b.txt", b"beta")], manifest=manifest)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
        assert r.json()["field"] == field
    r = api.post(f"/v1/indexes/{index['id']}/documents/batch", files=[("file", ("a.txt", b"x"))],
                 data={"manifest": "[not json"})
    assert r.status_code == 422
    assert api.get(f"/v1/indexes/{index['id']}/documents").json()["total"] == 0


def test_async_batch_queues_one_job_per_file(api):
    index = api.create_index()
    files = [(f"a{n}.txt", f"Async note {n} about swifts.".encode()) for n in range(3)]
    r = _batch(api, index["id"], files, params={"async": "true"})
    assert r.status_code == 201, r.text
    items = r.json()["items"]
    assert all(i["status_code"] == 202 and i["job_class"] == "ingest" for i in items)
    import time

    deadline = time.time() + 120
    while time.time() < deadline:
        states = {api.get(f"/v1/rag/jobs/{i['id']}").json()["status"] for i in items}
        if states == {"succeeded"}:
            break
        time.sleep(0.2)
    assert states == {"succeeded"}


def test_batch_is_refused_whole_by_the_gate(api, app_factory):
    from tests.conftest import Api, new_key

    index = api.create_index(privacy_tier="private")
    r = _batch(api, index["id"], [("a.txt", b"alpha")], data_boundary="global_public_only")
    assert r.status_code == 403 and r.json()["code"] == "data_boundary_violation"
    client, ctx = app_factory()
    other = Api(client, new_key(ctx, project="other"))
    assert _batch(other, index["id"], [("a.txt", b"alpha")]).status_code == 404
    assert api.get(f"/v1/indexes/{index['id']}/documents").json()["total"] == 0
