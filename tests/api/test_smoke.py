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
