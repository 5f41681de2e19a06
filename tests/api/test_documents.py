"""Upload, versions, unchanged uploads, conditional uploads, bad input, delete/restore."""

import json

from tests.files import pdf_bytes, sample_files


def _upload_ok(api, index_id, filename, content, status=201, **fields):
    r = api.upload(index_id, filename, content, **fields)
    assert r.status_code == status, r.text
    return r.json()


def test_every_format_uploads_ready_with_contract_fields(api):
    index = api.create_index()
    for filename, content in sample_files().items():
        body = _upload_ok(api, index["id"], filename, content, metadata=json.dumps({"author": "ann", "tags": ["x"]}))
        for field in ("id", "index_id", "name", "version", "status", "content_hash", "metadata", "chunk_count", "created_at"):
            assert field in body, (filename, field)
        assert body["name"] == filename and body["status"] == "ready" and body["index_id"] == index["id"]
        assert body["metadata"] == {"author": "ann", "tags": ["x"]}
    pdf = api.get(f"/v1/indexes/{index['id']}/documents/by-name/report.pdf").json()
    text = api.get(f"/v1/documents/{pdf['id']}/versions/1").json()
    assert "Rottnest" in text["text"] and text["chunks"][0]["page"] == 1
    assert api.get(f"/v1/indexes/{index['id']}").json()["document_count"] == len(sample_files())


def test_versions_unchanged_and_listing(api):
    index = api.create_index()
    i = index["id"]
    v1 = _upload_ok(api, i, "a.md", b"# A\n\nFirst version text about owls.", name="handbook")
    v2 = _upload_ok(api, i, "a.md", b"# A\n\nSecond version text about larks.", name="handbook")
    assert (v1["version"], v2["version"]) == (1, 2) and v1["id"] == v2["id"]
    same = _upload_ok(api, i, "a.md", b"# A\n\nSecond version text about larks.", status=200, name="handbook")
    assert same["unchanged"] is True and same["version"] == 2
    # same bytes but new metadata is a change
    v3 = _upload_ok(api, i, "a.md", b"# A\n\nSecond version text about larks.", name="handbook", metadata='{"rev": 3}')
    assert v3["version"] == 3

    versions = api.get(f"/v1/indexes/{i}/documents/by-name/handbook/versions").json()
    assert [v["version"] for v in versions["items"]] == [1, 2, 3]
    assert all(v["status"] == "ready" and v["content_hash"] and "created_at" in v for v in versions["items"])
    assert versions["items"][2]["metadata"] == {"rev": 3}
    old = api.get(f"/v1/indexes/{i}/documents/{v1['id']}/versions/1").json()
    assert "owls" in old["text"]

    doc = api.get(f"/v1/indexes/{i}/documents/by-name/handbook").json()
    assert doc["version"] == 3 and doc["current_version"] == 3
    listing = api.get(f"/v1/indexes/{i}/documents", params={"per_page": 10}).json()
    assert listing["total"] == 1 and listing["per_page"] == 10 and listing["items"][0]["name"] == "handbook"
    assert api.get("/v1/documents").json()["total"] == 1
    assert api.get(f"/v1/documents/{v1['id']}").json()["name"] == "handbook"


def test_if_version_compare_and_swap(api):
    i = api.create_index()["id"]
    assert _upload_ok(api, i, "n.txt", b"alpha text one", if_version=0)["version"] == 1
    r = api.upload(i, "n.txt", b"alpha text two", if_version=0)
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == body["code"] == "version_conflict" and body["current_version"] == 1 and body["message"]
    assert _upload_ok(api, i, "n.txt", b"alpha text two", if_version=1)["version"] == 2
    r = api.upload(i, "n.txt", b"alpha text three", if_version=1)
    assert r.status_code == 409 and r.json()["current_version"] == 2
    r = api.upload(i, "new.txt", b"never existed", if_version=4)
    assert r.status_code == 409 and r.json()["current_version"] == 0
    assert api.upload(i, "n.txt", b"x", if_version="abc").status_code == 422


def test_if_match_etag(api):
    i = api.create_index()["id"]
    r = api.upload(i, "e.txt", b"etag text version one")
    etag = r.headers["ETag"]
    r2 = api.post(f"/v1/indexes/{i}/documents", files={"file": ("e.txt", b"etag text version two")},
                  headers={"If-Match": etag})
    assert r2.status_code == 201 and r2.json()["version"] == 2
    r3 = api.post(f"/v1/indexes/{i}/documents", files={"file": ("e.txt", b"etag text version three")},
                  headers={"If-Match": etag})
    assert r3.status_code == 409 and r3.json()["current_version"] == 2


def test_bad_input_never_creates_a_version(app_factory):
    from tests.conftest import Api, new_key

    client, ctx = app_factory(max_upload_mb=1)
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    _upload_ok(api, i, "doc.pdf", pdf_bytes(["The original fact about narwhals."]), name="doc")
    cases = [
        (("doc.exe", b"MZ binary"), 415, "unsupported_media_type"),
        (("doc.pdf", b""), 422, "empty_document"),
        (("doc.pdf", b"%PDF-1.4 this is not really a pdf"), 422, "corrupt_document"),
        (("doc.txt", b"\xff\xfe\xfa invalid utf8 \xc3\x28"), 422, "corrupt_document"),
        (("doc.json", b"{not json"), 422, "corrupt_document"),
        (("doc.txt", b"x" * (1024 * 1024 + 10)), 413, "payload_too_large"),
    ]
    for (filename, content), status, code in cases:
        r = api.upload(i, filename, content, name="doc")
        assert r.status_code == status, (filename, r.text)
        assert r.json()["code"] == code
    r = api.upload(i, "doc.txt", b"fine text", name="doc", metadata="{broken")
    assert r.status_code == 422 and r.json()["field"] == "metadata"
    assert api.upload(i, "doc.txt", b"fine text", name="doc", metadata="[1, 2]").status_code == 422
    assert api.post(f"/v1/indexes/{i}/documents", data={"name": "doc"}).status_code == 422  # no file

    versions = api.get(f"/v1/indexes/{i}/documents/by-name/doc/versions").json()["items"]
    assert [v["version"] for v in versions] == [1]
    hits = api.search("narwhals original fact", i).json()["results"]
    assert hits and hits[0]["version"] == 1


def test_names_lose_paths_and_control_characters(api):
    i = api.create_index()["id"]
    body = _upload_ok(api, i, "../../etc/passwd.txt", b"not really passwords")
    assert body["name"] == "passwd.txt"
    body = _upload_ok(api, i, "ok.txt", b"some text here", name="re\x00port\n.txt")
    assert body["name"] == "report.txt"
    assert api.upload(i, "ok.txt", b"text", name="..").status_code == 422


def test_soft_delete_restore_and_hard_delete(api):
    i = api.create_index()["id"]
    doc = _upload_ok(api, i, "tern.txt", b"The arctic tern migrates from pole to pole.")
    assert api.search("arctic tern migrates", i).json()["results"]

    r = api.delete(f"/v1/indexes/{i}/documents/{doc['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert api.search("arctic tern migrates", i).json()["results"] == []
    assert api.get(f"/v1/indexes/{i}/documents").json()["total"] == 0
    assert api.get(f"/v1/indexes/{i}/documents", params={"include_deleted": True}).json()["total"] == 1

    r = api.post(f"/v1/indexes/{i}/documents/{doc['id']}/restore")
    assert r.status_code == 200 and r.json()["deleted"] is False
    assert api.search("arctic tern migrates", i).json()["results"][0]["document_id"] == doc["id"]

    _upload_ok(api, i, "tern.txt", b"The arctic tern now migrates differently, version two.")
    r = api.delete(f"/v1/documents/{doc['id']}", params={"hard": True})
    assert r.status_code == 200 and r.json()["hard"] is True and r.json()["points_remaining"] == 0
    assert api.get(f"/v1/documents/{doc['id']}").status_code == 404
    assert api.search("arctic tern", i).json()["results"] == []


def test_hard_delete_leaves_zero_points(app_factory):
    from rag_service.stores.vector import DOCUMENT_POINT, Filter, Match
    from tests.conftest import Api, new_key

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index()
    doc = _upload_ok(api, index["id"], "big.md", ("# T\n\n" + "Paragraph about geology and rocks. " * 200).encode())
    _upload_ok(api, index["id"], "big.md", ("# T\n\n" + "Paragraph about volcanoes and lava. " * 200).encode())
    keep = _upload_ok(api, index["id"], "keep.txt", b"Unrelated document that stays.")
    alias = index["collection_alias"]
    by_doc = Filter(must=(Match("document_id", doc["id"]),))
    assert ctx.vectors.count(alias, by_doc) > 2
    api.delete(f"/v1/indexes/{index['id']}/documents/{doc['id']}", params={"hard": True})
    assert ctx.vectors.count(alias, by_doc) == 0
    assert ctx.vectors.count(alias, Filter(must=(Match("document_id", keep["id"]),), must_not=(DOCUMENT_POINT,))) == 1


def test_decompression_bomb_docx_is_refused(app_factory):
    import io
    import zipfile

    from tests.conftest import Api, new_key

    client, ctx = app_factory(max_unzipped_mb=1)
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"<w:document/>" + b" " * (5 * 1024 * 1024))
    r = api.upload(i, "bomb.docx", buf.getvalue())
    assert r.status_code == 422 and r.json()["code"] == "corrupt_document" and r.json()["reason"] == "decompression_bomb"
    assert api.get(f"/v1/indexes/{i}/documents").json()["total"] == 0


def test_upload_reports_chunks_embedded_and_reused(api):
    index = api.create_index(chunk_max_characters=200)
    sections = [f"# Part {n}\n\nParagraph {n} says the {n}th heron nests by river bend {n * 7}." for n in range(6)]
    v1 = _upload_ok(api, index["id"], "h.md", "\n\n".join(sections).encode())
    assert v1["chunk_count"] >= 3 and v1["chunks_embedded"] == v1["chunk_count"] and v1["chunks_reused"] == 0
    sections[-1] = "# Part 5\n\nThe last paragraph now talks about kingfishers instead."
    v2 = _upload_ok(api, index["id"], "h.md", "\n\n".join(sections).encode())
    # Only the edited section's chunk is new text: everything else comes from the cache.
    assert v2["chunks_embedded"] == 1 and v2["chunks_reused"] == v2["chunk_count"] - 1
    version = api.get(f"/v1/documents/{v2['id']}/versions/2").json()
    assert (version["chunks_embedded"], version["chunks_reused"]) == (1, v2["chunk_count"] - 1)


def test_a_hard_delete_leaves_no_row_behind_not_even_waiting_upload_bytes(app_factory):
    # One cascade for a document and for a whole index: chunks, versions, and the bytes of an
    # async upload whose job has not run yet all go with it.
    from sqlmodel import select

    from rag_service.models import Chunk, Document, DocumentVersion, UploadBlob
    from tests.conftest import Api, new_key

    client, ctx = app_factory(job_runner="off")
    api = Api(client, new_key(ctx))
    index = api.create_index("cascade")["id"]
    ready = api.upload(index, "ready.txt", b"Indexed text about terns.").json()
    pending = api.post(f"/v1/indexes/{index}/documents?async=true", files={"file": ("later.txt", b"Queued text.")})
    assert pending.status_code == 202, pending.text

    def rows(model):
        with ctx.db.session() as s:
            return s.exec(select(model)).all()

    assert rows(UploadBlob) and rows(Chunk)
    later = pending.json()["document"]["id"]
    assert api.delete(f"/v1/indexes/{index}/documents/{later}?hard=true").status_code == 200
    assert rows(UploadBlob) == [] and {d.id for d in rows(Document)} == {ready["id"]}
    assert api.delete(f"/v1/indexes/{index}").status_code == 204
    assert rows(Chunk) == [] and rows(DocumentVersion) == [] and rows(Document) == []


def test_an_unchanged_upload_is_answered_without_parsing_the_file(app_factory, monkeypatch):
    from tests.conftest import Api, new_key

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("noparse")["id"]
    parsed = []
    real = ctx.parser.prepare
    monkeypatch.setattr(ctx.parser, "prepare", lambda *a, **k: parsed.append(a[1]) or real(*a, **k))
    body = b"# Plovers\n\nSnowy plovers nest on open shingle.\n"
    assert api.upload(index, "plovers.md", body).status_code == 201
    again = api.upload(index, "plovers.md", body)
    assert again.status_code == 200 and again.json()["unchanged"] is True
    assert parsed == ["plovers.md"]  # parsed once: the second answer came from the hash alone
    assert api.upload(index, "plovers.md", body + b"\nThey lay three eggs.\n").status_code == 201
    assert parsed == ["plovers.md", "plovers.md"]


def test_version_chunks_carry_the_hash_that_says_which_were_re_embedded(api):
    # A diff of two versions (the console's) tells unchanged chunks from re-embedded ones by hash.
    index = api.create_index("hashes")["id"]
    leave = b"Parental leave is sixteen weeks, paid in full, for every parent employed six months. " * 8
    travel = b"Book trains rather than flights for trips under four hours, and keep every receipt. " * 8
    one = b"# Leave\n\n" + leave + b"\n\n# Travel\n\n" + travel + b"\n"
    two = one.replace(b"sixteen", b"twenty")
    first = api.upload(index, "policy.md", one).json()
    second = api.upload(index, "policy.md", two).json()
    v1 = api.get(f"/v1/documents/{first['id']}/versions/1").json()["chunks"]
    v2 = api.get(f"/v1/documents/{first['id']}/versions/2").json()["chunks"]
    shared = {c["content_hash"] for c in v1} & {c["content_hash"] for c in v2}
    assert [c["text"] for c in v2 if c["content_hash"] in shared] == [c["text"] for c in v1 if "Travel" in c["text"]]
    assert second["chunks_reused"] == len(shared) and second["chunks_embedded"] == len(v2) - len(shared)
