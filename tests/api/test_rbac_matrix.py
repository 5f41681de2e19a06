"""Every route x every role x another project's admin key, from one table.

The table must list exactly the routes in the OpenAPI schema, so a new route
cannot ship without a decision about who may call it. For each route:
- no key: 401 (unless public);
- a role below the route's: 403 `forbidden`;
- a role at or above it: a 2xx;
- another project's admin: 404 `not_found` for this project's objects, and
  collection routes answer without a trace of this project's data.
"""

from __future__ import annotations

import itertools
import re

import pytest

from tests.conftest import Api, new_key

ROLES = ("reader", "editor", "admin")

# (method, path) -> the least role that may call it ("public": no key needed).
REQUIRED_ROLE = {
    ("GET", "/v1/indexes"): "reader",
    ("POST", "/v1/indexes"): "editor",
    ("GET", "/v1/indexes/{index_id}"): "reader",
    ("PATCH", "/v1/indexes/{index_id}"): "editor",
    ("DELETE", "/v1/indexes/{index_id}"): "editor",
    ("POST", "/v1/indexes/{index_id}/documents"): "editor",
    ("POST", "/v1/indexes/{index_id}/documents/batch"): "editor",
    ("GET", "/v1/indexes/{index_id}/documents"): "reader",
    ("GET", "/v1/indexes/{index_id}/documents/by-name/{name}/versions"): "reader",
    ("GET", "/v1/indexes/{index_id}/documents/by-name/{name}"): "reader",
    ("GET", "/v1/indexes/{index_id}/documents/{document_id}"): "reader",
    ("DELETE", "/v1/indexes/{index_id}/documents/{document_id}"): "editor",
    ("GET", "/v1/indexes/{index_id}/documents/{document_id}/versions/{version}"): "reader",
    ("POST", "/v1/indexes/{index_id}/documents/{document_id}/restore"): "editor",
    ("GET", "/v1/documents"): "reader",
    ("GET", "/v1/documents/{document_id}"): "reader",
    ("DELETE", "/v1/documents/{document_id}"): "editor",
    ("GET", "/v1/documents/{document_id}/versions/{version}"): "reader",
    ("POST", "/v1/documents/{document_id}/restore"): "editor",
    ("POST", "/v1/search"): "reader",
    ("POST", "/v1/indexes/{index_id}/search"): "reader",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("GET", "/v1/rag/status"): "public",
    ("GET", "/v1/health"): "public",
    ("GET", "/v1/ready"): "public",
    ("GET", "/v1/rag/jobs"): "reader",
    ("POST", "/v1/rag/jobs"): "editor",
    ("GET", "/v1/rag/jobs/{job_id}"): "reader",
    ("POST", "/v1/rag/jobs/{job_id}/cancel"): "editor",
    ("GET", "/v1/rag/evidence/{evidence_id}"): "reader",
    ("GET", "/v1/audit-log"): "admin",
    ("GET", "/v1/tools/openai"): "reader",
    ("POST", "/v1/tools/call"): "reader",
    ("GET", "/v1/webhooks"): "admin",
    ("POST", "/v1/webhooks"): "admin",
    ("GET", "/v1/webhooks/{webhook_id}"): "admin",
    ("PATCH", "/v1/webhooks/{webhook_id}"): "admin",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "admin",
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): "admin",
    ("POST", "/v1/webhooks/{webhook_id}/test"): "admin",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "admin",
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): "admin",
    ("GET", "/v1/events"): "reader",
}

SECRET = "ultraviolet-pelican-ledger"  # a word only project A's document holds (and searches ask for)
BODY_ONLY = "report number"  # in A's document text, never in a request: must never reach project B
DESTRUCTIVE = {("DELETE", "/v1/indexes/{index_id}"), ("DELETE", "/v1/keys/{key_id}"),
               ("DELETE", "/v1/indexes/{index_id}/documents/{document_id}"), ("DELETE", "/v1/documents/{document_id}"),
               ("DELETE", "/v1/webhooks/{webhook_id}")}


class World:
    """Project A's objects, and keys for every role of A plus B's admin."""

    def __init__(self, app_factory) -> None:
        # Webhooks point at a closed loopback port (allowed here) and are never sent.
        self.client, self.ctx = app_factory(webhook_allow_private=True, webhook_delivery="off")
        self.keys = {role: new_key(self.ctx, "project-a", role) for role in ROLES}
        self.keys["other"] = new_key(self.ctx, "project-b", "admin")
        self.admin = Api(self.client, self.keys["admin"])
        self.counter = itertools.count()
        self.ids = self.fresh_objects()

    def fresh_objects(self) -> dict[str, str]:
        n = next(self.counter)
        index = self.admin.create_index(f"rbac-{n}")
        doc = self.admin.upload(index["id"], f"doc{n}.txt", f"The {SECRET} report number {n}.".encode())
        assert doc.status_code == 201, doc.text
        job = self.admin.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": index["id"]})
        assert job.status_code in (200, 201, 202), job.text
        search = self.admin.search(SECRET, index["id"])
        assert BODY_ONLY in search.text  # so its absence below means something
        key = self.admin.post("/v1/keys", json={"role": "reader", "name": f"throwaway-{n}"})
        hook = self.admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}).json()
        delivery = self.admin.post(f"/v1/webhooks/{hook['id']}/test").json()
        return {"webhook_id": hook["id"], "delivery_id": delivery["id"],"index_id": index["id"], "document_id": doc.json()["id"], "name": doc.json()["name"], "version": "1",
                "job_id": job.json()["id"], "evidence_id": search.json()["evidence"]["evidence_id"], "key_id": key.json()["id"]}

    def call(self, method: str, path: str, key: str | None, ids: dict[str, str]):
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        headers = {"X-API-Key": key} if key else {}
        kwargs: dict = {"headers": headers}
        if (method, path) == ("POST", "/v1/indexes"):
            kwargs["json"] = {"name": f"made-{next(self.counter)}"}
        elif (method, path) == ("PATCH", "/v1/indexes/{index_id}"):
            kwargs["json"] = {"description": "patched"}
        elif path.endswith(("/documents", "/documents/batch")) and method == "POST":
            kwargs.update(files={"file": ("new.txt", f"fresh text {next(self.counter)}".encode())})
        elif path.endswith("/search"):
            kwargs["json"] = {"query": SECRET}
        elif (method, path) == ("POST", "/v1/keys"):
            kwargs["json"] = {"role": "reader"}
        elif (method, path) == ("POST", "/v1/rag/jobs"):
            kwargs["json"] = {"job_class": "reconcile", "index_id": ids["index_id"]}
        elif (method, path) == ("POST", "/v1/webhooks"):
            kwargs["json"] = {"url": "http://127.0.0.1:9/other", "events": ["document.version.ready"]}
        elif (method, path) == ("PATCH", "/v1/webhooks/{webhook_id}"):
            kwargs["json"] = {"description": "patched"}
        elif (method, path) == ("GET", "/v1/events"):  # the whole retained stream, then the stream ends
            kwargs["params"] = {"timeout_s": 0.3}
            headers["Last-Event-ID"] = "0"
        elif (method, path) == ("POST", "/v1/tools/call"):
            kwargs["json"] = {"name": "search", "arguments": {"query": SECRET}}
        return self.client.request(method, url, **kwargs)


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: authorization is decided above the database (the PostgreSQL paths of
    the same services run in every other API test), and 160 calls per database cost CI time."""
    return f"sqlite:///{tmp_path / 'rag.db'}"


@pytest.fixture
def world(app_factory) -> World:
    return World(app_factory)


def test_the_table_lists_every_route(world):
    schema = world.client.get("/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert routes == set(REQUIRED_ROLE), {"missing from table": routes - set(REQUIRED_ROLE),
                                          "not routes": set(REQUIRED_ROLE) - routes}


@pytest.mark.parametrize("route", sorted(REQUIRED_ROLE), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_by_role(world, route):
    method, path = route
    required = REQUIRED_ROLE[route]
    destructive = route in DESTRUCTIVE
    for who in (None, *ROLES, "other"):
        ids = world.fresh_objects() if destructive else world.ids
        r = world.call(method, path, world.keys.get(who) if who else None, ids)
        label = f"{method} {path} as {who}: {r.status_code} {r.text[:200]}"
        assert r.status_code < 500, label
        if required == "public":
            assert r.status_code == 200, label
            assert SECRET not in r.text and ids["index_id"] not in r.text, label
            continue
        if who is None:
            assert r.status_code == 401 and r.json()["code"] == "unauthorized", label
        elif who == "other":
            if "{" in path or route == ("POST", "/v1/rag/jobs"):  # names A's index in the path or body
                # The same answer as for an id that never existed (the 404 echoes only what was sent).
                assert r.status_code == 404 and r.json()["code"] == "not_found", label
                assert BODY_ONLY not in r.text and ids["name"] not in r.text, label
            else:
                assert 200 <= r.status_code < 300, label
                assert BODY_ONLY not in r.text and ids["index_id"] not in r.text and ids["document_id"] not in r.text, label
        elif ROLES.index(who) < ROLES.index(required):
            assert r.status_code == 403 and r.json()["code"] == "forbidden", label
        else:
            assert 200 <= r.status_code < 300, label


def test_other_project_cannot_name_our_index_in_bodies(world):
    other = Api(world.client, world.keys["other"])
    r = other.search(SECRET, index_ids=[world.ids["index_id"]])
    assert r.status_code == 404 and BODY_ONLY not in r.text
    r = other.post("/v1/tools/call", json={"name": "search", "arguments": {"query": SECRET,
                                                                             "index_ids": [world.ids["index_id"]]}})
    assert BODY_ONLY not in r.text and r.status_code in (200, 404)
