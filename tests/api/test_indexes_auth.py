"""Indexes CRUD, authentication, roles and tenant isolation."""

from tests.conftest import Api, new_key


def test_index_crud_and_defaults(api):
    created = api.create_index("kb", description="knowledge", chunk_max_characters=500, chunk_overlap=50)
    assert created["privacy_tier"] == "private"
    assert created["embedding_model"] == "all-MiniLM-L6-v2"
    assert created["chunking"] == {"max_characters": 500, "overlap": 50}
    assert created["document_count"] == 0 and created["created_at"]

    listed = api.get("/v1/indexes").json()
    assert listed["total"] == 1 and listed["page"] == 1 and listed["items"][0]["id"] == created["id"]

    r = api.patch(f"/v1/indexes/{created['id']}", json={"description": "new", "privacy_tier": "public"})
    assert r.status_code == 200 and r.json()["description"] == "new" and r.json()["privacy_tier"] == "public"

    assert api.delete(f"/v1/indexes/{created['id']}").status_code == 204
    assert api.get(f"/v1/indexes/{created['id']}").json()["code"] == "not_found"


def test_duplicate_index_name_is_409(api):
    api.create_index("same")
    r = api.post("/v1/indexes", json={"name": "same"})
    assert r.status_code == 409 and r.json()["code"] == "conflict"


def test_index_validation_errors(api):
    for body in ({"name": "x", "privacy_tier": "secret"}, {"name": ""}, {"name": "x", "chunk_max_characters": 5},
                 {"name": "x", "embedding_model": "/nonexistent/model"}, {"name": "x", "bogus": 1}):
        r = api.post("/v1/indexes", json=body)
        assert r.status_code == 422, (body, r.text)
        body_json = r.json()
        assert body_json["error"] == body_json["code"] == "validation_error" and body_json["message"]


def test_missing_and_invalid_keys_are_401(api):
    for headers in ({}, {"X-API-Key": "rag_wrong"}, {"Authorization": "Bearer nope"}):
        r = api.client.get("/v1/indexes", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_bearer_auth_works(api):
    r = api.client.get("/v1/indexes", headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == 200


def test_roles(app_factory):
    client, ctx = app_factory()
    admin = Api(client, new_key(ctx, "acme", "admin"))
    reader = Api(client, new_key(ctx, "acme", "reader"))
    editor = Api(client, new_key(ctx, "acme", "editor"))
    index = admin.create_index()
    assert reader.get("/v1/indexes").status_code == 200
    r = reader.post("/v1/indexes", json={"name": "nope"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert reader.upload(index["id"], "a.txt", b"hello there").status_code == 403
    assert editor.upload(index["id"], "a.txt", b"hello there general kenobi").status_code == 201
    assert editor.get("/v1/keys").status_code == 403
    r = admin.post("/v1/keys", json={"role": "reader"})
    assert r.status_code == 201 and r.json()["key"].startswith("rag_")
    new = Api(client, r.json()["key"])
    assert new.get("/v1/indexes").status_code == 200
    assert admin.delete(f"/v1/keys/{r.json()['id']}").status_code == 200
    assert new.get("/v1/indexes").status_code == 401


def test_other_projects_objects_answer_404(app_factory):
    client, ctx = app_factory()
    a = Api(client, new_key(ctx, "project-a"))
    b = Api(client, new_key(ctx, "project-b"))
    index = a.create_index("secret-index")
    doc = a.upload(index["id"], "secret.txt", b"The launch code is swordfish.").json()
    i, d = index["id"], doc["id"]
    probes = [
        ("get", f"/v1/indexes/{i}", {}),
        ("patch", f"/v1/indexes/{i}", {"json": {"description": "x"}}),
        ("delete", f"/v1/indexes/{i}", {}),
        ("get", f"/v1/indexes/{i}/documents", {}),
        ("get", f"/v1/indexes/{i}/documents/{d}", {}),
        ("get", f"/v1/indexes/{i}/documents/by-name/secret.txt", {}),
        ("get", f"/v1/indexes/{i}/documents/by-name/secret.txt/versions", {}),
        ("get", f"/v1/indexes/{i}/documents/{d}/versions/1", {}),
        ("delete", f"/v1/indexes/{i}/documents/{d}", {}),
        ("post", f"/v1/indexes/{i}/documents/{d}/restore", {}),
        ("get", f"/v1/documents/{d}", {}),
        ("get", f"/v1/documents/{d}/versions/1", {}),
        ("delete", f"/v1/documents/{d}", {}),
        ("post", f"/v1/indexes/{i}/search", {"json": {"query": "launch code"}}),
        ("post", "/v1/search", {"json": {"query": "launch code", "index_ids": [i]}}),
    ]
    for method, url, kw in probes:
        r = getattr(b, method)(url, **kw)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert r.json()["code"] == "not_found" and "swordfish" not in r.text
    assert b.upload(i, "x.txt", b"intruder text here").status_code == 404
    assert b.get("/v1/documents").json()["total"] == 0
    hits = b.search("launch code swordfish").json()["results"]
    assert hits == []
    # and A still has everything
    assert a.get(f"/v1/documents/{d}").status_code == 200
    assert a.search("launch code swordfish", i).json()["results"][0]["document_id"] == d
