"""The version compare-and-swap under real concurrency, and incremental re-embedding."""

import multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import Api, new_key


def test_concurrent_uploads_with_same_if_version_one_wins(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    assert api.upload(i, "race.txt", b"base version of the race document").status_code == 201

    def attempt(n: int):
        return api.upload(i, "race.txt", f"contender {n} rewrote the race document".encode(), if_version=1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attempt, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1, [r.text for r in responses]
    assert codes.count(409) == 7
    assert all(r.json()["current_version"] == 2 for r in responses if r.status_code == 409)
    versions = api.get(f"/v1/indexes/{i}/documents/by-name/race.txt/versions").json()["items"]
    assert [v["version"] for v in versions] == [1, 2]


def test_concurrent_unconditional_uploads_get_dense_versions(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]

    def attempt(n: int):
        return api.upload(i, "busy.txt", f"writer {n} says something distinct".encode())

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(attempt, range(6)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == [1, 2, 3, 4, 5, 6]
    doc = api.get(f"/v1/indexes/{i}/documents/by-name/busy.txt").json()
    assert doc["current_version"] == 6
    hits = api.search("writer says something distinct", i, top_k=10).json()["results"]
    assert {h["version"] for h in hits} == {6}


def _claim_in_process(url: str, index_id: str, project_id: str, barrier, out) -> None:
    """Runs in a separate process: its own engine and connections."""
    from rag_service.config import Settings
    from rag_service.context import ServiceContext
    from rag_service.db import Database
    from rag_service.errors import VersionConflict
    from rag_service.services.common import Principal
    from rag_service.services.uploads import UploadService
    from rag_service.services.preparation import prepare_upload

    db = Database(url)
    ctx = ServiceContext(settings=Settings(database_url=url), db=db, vectors=None, embedders=None, embedding=None)
    service = UploadService(ctx)
    with db.session() as s:
        from rag_service.models import Index

        index = s.get(Index, index_id)
    prepared = prepare_upload(b"a process wrote this text", "p.txt", 1000, 0)
    barrier.wait()
    try:
        _, version, _ = service._allocate_version(Principal(project_id, None, "editor"), index, "p.txt", prepared, {}, 1)
        out.put(("won", version.version))
    except VersionConflict as exc:
        out.put(("conflict", exc.detail["current_version"]))


@pytest.mark.parametrize("processes", [4])
def test_compare_and_swap_across_processes(app_factory, processes):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index()
    assert api.upload(index["id"], "p.txt", b"version one from the api").status_code == 201
    from sqlmodel import select

    from rag_service.models import Index

    with ctx.db.session() as s:
        project_id = s.exec(select(Index.project_id).where(Index.id == index["id"])).one()
    mpctx = mp.get_context("spawn")
    barrier, out = mpctx.Barrier(processes), mpctx.Queue()
    procs = [mpctx.Process(target=_claim_in_process, args=(ctx.db.url, index["id"], project_id, barrier, out))
             for _ in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = [out.get(timeout=5) for _ in procs]
    assert sorted(r[0] for r in results) == ["conflict"] * (processes - 1) + ["won"]
    assert all(r[1] == 2 for r in results)


def test_new_version_embeds_only_changed_chunks(app_factory, embedders):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index(chunk_max_characters=300)["id"]
    sections = [f"# Section {n}\n\n" + f"Paragraph {n} discusses topic number {n} in some detail. " * 4 for n in range(6)]
    before = embedders.encode_calls
    v1 = api.upload(i, "s.md", "\n\n".join(sections).encode()).json()
    first = embedders.encode_calls - before
    assert v1["chunk_count"] >= 5 and first == v1["chunk_count"]

    sections[3] = "# Section 3\n\n" + "This paragraph was rewritten about penguins entirely. " * 4
    before = embedders.encode_calls
    v2 = api.upload(i, "s.md", "\n\n".join(sections).encode()).json()
    assert v2["version"] == 2 and v2["chunk_count"] == v1["chunk_count"]
    assert embedders.encode_calls - before == 1
    hits = api.search("penguins rewritten", i, mode="lexical").json()["results"]
    assert hits[0]["version"] == 2 and "penguins" in hits[0]["text"]
