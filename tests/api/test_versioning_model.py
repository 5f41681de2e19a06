"""A Hypothesis state machine drives uploads (plain and conditional), deletes,
restores and searches against the API, beside a model of the versioning rules
written from the contract; after every step the API must agree with the model.

The model, per document name:
- an upload with if_version != latest is 409 version_conflict carrying the latest;
- an upload of the bytes already served (and not deleted) is 200 "unchanged";
- any other upload is 201 at latest + 1, becomes current and un-deletes;
- a soft delete hides the document from search; restore brings it back;
- search returns exactly the current version of live documents, never another.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.conftest import Api, new_key

NAMES = ("alpha.txt", "beta.txt", "gamma.txt")
# Each (name, content number) has one marker word, so a search for it has one right answer.
CONTENTS = range(3)


def marker(name: str, content: int) -> str:
    return f"zq{name[0]}{'xyw'[content]}marker"


def body(name: str, content: int) -> bytes:
    return f"Report {marker(name, content)} about {name.split('.')[0]} revision {content}.".encode()


class VersioningMachine(RuleBasedStateMachine):
    # Held in a dict: Hypothesis inspects class attributes for rules, and Api answers any attribute.
    bound: dict[str, Api] = {}
    counter = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.api = self.bound["api"]
        self.index_id = self.api.create_index(f"model-{next(self.counter)}")["id"]
        self.latest: dict[str, int] = {}
        self.current_content: dict[str, int] = {}
        self.deleted: dict[str, bool] = {}
        self.ids: dict[str, str] = {}

    @rule(name=st.sampled_from(NAMES), content=st.sampled_from(CONTENTS),
          condition=st.sampled_from(["none", "right", "stale", "ahead"]))
    def upload(self, name, content, condition):
        latest = self.latest.get(name, 0)
        if_version = {"none": None, "right": latest, "stale": latest - 1, "ahead": latest + 1}[condition]
        if if_version is not None and if_version < 0:
            if_version = None
        r = self.api.upload(self.index_id, name, body(name, content), if_version=if_version)
        if if_version is not None and if_version != latest:
            assert r.status_code == 409, r.text
            assert r.json()["code"] == "version_conflict" and r.json()["current_version"] == latest
            return
        if name in self.latest and not self.deleted[name] and self.current_content[name] == content:
            assert r.status_code == 200 and r.json()["version"] == latest, r.text
            return
        assert r.status_code == 201, r.text
        assert r.json()["version"] == latest + 1
        self.latest[name] = latest + 1
        self.current_content[name] = content
        self.deleted[name] = False
        self.ids[name] = r.json()["id"]

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name):
        if name not in self.ids:
            return
        r = self.api.delete(f"/v1/documents/{self.ids[name]}")
        assert r.status_code == 200, r.text
        self.deleted[name] = True

    @rule(name=st.sampled_from(NAMES))
    def restore(self, name):
        if name not in self.ids:
            return
        r = self.api.post(f"/v1/documents/{self.ids[name]}/restore")
        assert r.status_code == 200, r.text
        self.deleted[name] = False

    @rule(name=st.sampled_from(NAMES), content=st.sampled_from(CONTENTS), mode=st.sampled_from(["lexical", "hybrid"]))
    def search(self, name, content, mode):
        r = self.api.search(marker(name, content), self.index_id, mode=mode, top_k=10)
        assert r.status_code == 200, r.text
        found = [(h["document_name"], h["version"]) for h in r.json()["results"] if marker(name, content) in h["text"]]
        live = name in self.latest and not self.deleted[name] and self.current_content[name] == content
        assert found == ([(name, self.latest[name])] if live else []), (found, mode)
        # Whatever else matched, only current versions of live documents.
        for h in r.json()["results"]:
            assert not self.deleted[h["document_name"]] and h["version"] == self.latest[h["document_name"]], h

    @invariant()
    def versions_are_dense(self):
        for name, latest in self.latest.items():
            r = self.api.get(f"/v1/indexes/{self.index_id}/documents/by-name/{name}/versions")
            assert [v["version"] for v in r.json()["items"]] == list(range(1, latest + 1))


def test_api_agrees_with_the_versioning_model(app_factory):
    client, ctx = app_factory(rate_limit_per_minute=0)
    VersioningMachine.bound["api"] = Api(client, new_key(ctx))
    run_state_machine_as_test(
        VersioningMachine,
        settings=settings(max_examples=6, stateful_step_count=10, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck)),
    )
