from tests.files import sample_files


def test_upload_and_search_every_format(api):
    index = api.create_index()
    for filename, content in sample_files().items():
        r = api.upload(index["id"], filename, content, metadata='{"source": "test"}')
        assert r.status_code == 201, (filename, r.text)
        body = r.json()
        assert body["status"] == "ready" and body["version"] == 1 and body["chunk_count"] >= 1
    r = api.search("quokka Rottnest Island", index["id"], top_k=20)
    assert r.status_code == 200, r.text
    names = {hit["document_name"] for hit in r.json()["results"]}
    assert names == set(sample_files()), names


def test_a_restart_warms_the_search_path_and_records_no_search(settings_factory, embedders, app_factory, caplog):
    """Ready means ready: the warm-up runs one whole search over the latest index (so the first
    real one does not pay for first use), as a reader of its project, and leaves no trace."""
    import logging

    from fastapi.testclient import TestClient
    from sqlmodel import func, select

    from rag_service.app import create_app
    from rag_service.context import build_context
    from rag_service.models import Evidence
    from tests.conftest import Api, new_key

    settings = settings_factory()
    ctx = build_context(settings, embedders=embedders)
    try:
        with TestClient(create_app(settings, ctx=ctx)) as client:
            client.app.state.readiness.wait(120)
            api = Api(client, new_key(ctx))
            index = api.create_index("warm")["id"]
            assert api.upload(index, "tides.txt", b"The moon's gravity drives the tides.").status_code == 201
    finally:
        ctx.vectors.close()
        ctx.db.dispose()
    with caplog.at_level(logging.WARNING, logger="rag_service.services.readiness"):
        client2, ctx2 = app_factory()  # the same database and data directory: a restart
    ready = client2.get("/v1/ready")
    assert ready.status_code == 200 and ready.json()["warm_up"] == {"indexes": 1, "search": "ok"}, ready.json()
    failed = [r.getMessage() for r in caplog.records if "warm-up search failed" in r.getMessage()]
    assert not failed, failed
    with ctx2.db.session() as s:
        assert s.exec(select(func.count()).select_from(Evidence)).one() == 0  # no search was recorded
    hits = Api(client2, new_key(ctx2)).search("what drives the tides", index).json()["results"]
    assert hits and "tides" in hits[0]["text"]
