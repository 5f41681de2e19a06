"""What a person does with the console at /console, in chromium, against a live service:
every assertion is about what the page shows. (Fixtures: conftest.py; each test also checks
that the page asked nothing of any other origin and threw no error.)"""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.e2e.conftest import SLOW_MS

LEAVE = ("Parental leave is {weeks} weeks, paid in full, for every parent employed for at least six months; "
         "it can start up to four weeks before the expected birth date.")
TRAVEL = ("Book trains rather than flights for trips under four hours, and keep receipts for every ticket so "
          "that finance can refund them within the month.")
REMOTE = ("Remote work is allowed on two days a week for every team, provided the team agrees on one shared "
          "office day and keeps its calendar up to date.")
EXPENSES = "Expense claims above five hundred euros need a second approver from the finance team."


def policy(weeks: str, remote: bool = False) -> str:
    text = f"# Leave\n\n{LEAVE.format(weeks=weeks)}\n\n# Travel\n\n{TRAVEL}\n"
    return text + (f"\n# Remote work\n\n{REMOTE}\n" if remote else "")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def make_index(api, name: str, files: list[tuple[str, str]]) -> dict:
    """An index with documents, made through the HTTP API before the page opens (one upload per
    file, in order, so a repeated name becomes its next version)."""
    index = api.post("/v1/indexes", json={"name": name, "chunk_max_characters": 300})
    assert index.status_code == 201, index.text
    for filename, text in files:
        r = api.post(f"/v1/indexes/{name}/documents", files={"file": (filename, text.encode())})
        assert r.status_code in (200, 201), r.text
    return index.json()


def drop_files(page, target: str, files: dict[str, str]) -> None:
    """Drag and drop files onto `target`: a drop event carrying a DataTransfer of File objects."""
    transfer = page.evaluate_handle("""(files) => {
        const transfer = new DataTransfer();
        for (const [name, text] of Object.entries(files)) transfer.items.add(new File([text], name, {type: "text/markdown"}));
        return transfer;
    }""", files)
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})


def choose_index(page, name: str) -> None:
    page.locator('select[name="index"]').select_option(label=name)


def upload_row(page, filename: str, nth: int = 0):
    return page.get_by_role("table", name="Uploads").locator(f'tr[data-file="{filename}"]').nth(nth)


def test_a_wrong_key_gets_a_clear_message_and_the_key_is_asked_again(console, api):
    page = console.page
    page.goto(f"{console.base}/console")  # served without a key; the page asks for one
    expect(page).to_have_url(f"{console.base}/console/")
    expect(page.get_by_role("heading", name="RAG service console")).to_be_visible()
    console.enter_key("rag_not_a_key_of_this_service")
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("The service refused this API key")
    expect(refusal).to_contain_text("invalid or revoked API key")
    expect(refusal).to_contain_text("unauthorized")
    expect(page.get_by_label("API key")).to_be_visible()
    console.screenshot("key-refused")

    reader = api.post("/v1/keys", json={"role": "reader", "name": "console e2e"}).json()
    console.enter_key(reader["key"])
    expect(page.get_by_role("navigation", name="Console")).to_be_visible()
    # Kept in this tab only: no localStorage, no cookie.
    assert page.evaluate("() => [localStorage.length, document.cookie, sessionStorage.length]") == [0, "", 1]
    # A reader may not write: the refusal says why.
    page.get_by_label("Name", exact=True).fill(unique("not-allowed"))
    page.get_by_role("button", name="Create index").click()
    expect(page.get_by_role("alert")).to_contain_text("needs the editor role")
    expect(page.get_by_role("alert")).to_contain_text("forbidden")

    # The key is revoked while the console is open: the next call brings the prompt back, with the reason.
    assert api.delete(f"/v1/keys/{reader['id']}").status_code == 200
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid or revoked API key")
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_create_an_index_upload_two_files_then_a_new_version_and_see_its_diff(console):
    page = console.page
    name = unique("handbook")
    console.open()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Privacy tier").select_option("mesh_safe")
    page.get_by_label("Chunk max characters").fill("300")
    page.get_by_label("Chunk overlap").fill("0")
    page.get_by_role("button", name="Create index").click()
    expect(page.get_by_role("status")).to_contain_text(f"Index “{name}” created.")
    row = page.get_by_role("table", name="Indexes").locator(f'tr[data-index="{name}"]')
    expect(row).to_contain_text("mesh_safe")
    expect(row).to_contain_text("300 chars, overlap 0")
    console.screenshot("indexes")

    row.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="Upload")).to_be_visible()
    page.locator('input[type="file"]').set_input_files([
        {"name": "policy.md", "mimeType": "text/markdown", "buffer": policy("sixteen").encode()},
        {"name": "expenses.txt", "mimeType": "text/plain", "buffer": EXPENSES.encode()},
    ])
    for filename in ("policy.md", "expenses.txt"):
        expect(upload_row(page, filename)).to_contain_text("created", timeout=SLOW_MS)
    expect(upload_row(page, "policy.md")).to_contain_text("v1 of policy.md: 2 chunks (2 embedded, 0 reused)")

    # The changed file dropped onto the page: a second version, which embeds only what changed.
    drop_files(page, '[data-testid="dropzone"]', {"policy.md": policy("twenty", remote=True)})
    newer = upload_row(page, "policy.md", nth=0)
    expect(newer).to_contain_text("new version", timeout=SLOW_MS)
    expect(newer).to_contain_text("v2 of policy.md: 3 chunks (2 embedded, 1 reused)")
    # The same bytes again change nothing.
    drop_files(page, '[data-testid="dropzone"]', {"expenses.txt": EXPENSES})
    expect(upload_row(page, "expenses.txt", nth=0)).to_contain_text("unchanged", timeout=SLOW_MS)
    # A file the service can't take fails alone, with the service's message and code.
    drop_files(page, '[data-testid="dropzone"]', {"slides.key": "not a document"})
    failed = upload_row(page, "slides.key")
    expect(failed).to_contain_text("failed", timeout=SLOW_MS)
    expect(failed).to_contain_text("unsupported_media_type")
    expect(failed).to_contain_text(".md")  # the message lists what is accepted
    console.screenshot("upload")

    console.go("Documents")
    documents = page.get_by_role("table", name="Documents")
    expect(documents.locator("tbody tr")).to_have_count(2)
    doc = documents.locator('tr[data-document="policy.md"]')
    expect(doc).to_contain_text("v2 / v2")
    expect(doc).to_contain_text("ready")
    doc.get_by_role("button", name="Versions").click()
    versions = page.get_by_role("table", name="Versions")
    expect(versions.locator("tbody tr")).to_have_count(2)
    expect(versions.locator('tr[data-version="2"]')).to_contain_text("current")
    page.get_by_role("button", name="Show diff").click()
    diff = page.get_by_test_id("version-diff")
    expect(diff).to_contain_text("v1 → v2")
    # Only the edited line went; the edited line and the new section came.
    expect(diff.locator(".diff-removed")).to_have_count(1)
    expect(diff.locator(".diff-removed")).to_contain_text("Parental leave is sixteen weeks")
    expect(diff.locator(".diff-added").filter(has_text="Parental leave is twenty weeks")).to_have_count(1)
    expect(diff.locator(".diff-added").filter(has_text="Remote work is allowed")).to_have_count(1)
    expect(diff.locator(".diff-same").filter(has_text="Book trains rather than flights")).to_have_count(1)
    expect(page.get_by_test_id("chunk-summary")).to_contain_text("1 unchanged from v1, 2 with new text, 1 of v1's gone")
    expect(page.get_by_test_id("chunk-summary")).to_contain_text("2 embedded")
    changes = page.get_by_role("table", name="Chunk changes")
    expect(changes.locator("tr.chunk-kept")).to_contain_text("Book trains rather than flights")
    expect(changes.locator("tr.chunk-removed")).to_contain_text("sixteen weeks")
    console.screenshot("documents-diff")

    # The text and chunks of the first version are one click away.
    versions.get_by_role("button", name="View v1").click()
    shown = page.get_by_test_id("version-view")
    expect(shown).to_contain_text("v1 of policy.md")
    expect(shown.get_by_role("table", name="Chunks").locator("tbody tr")).to_have_count(2)


def test_search_shows_the_hit_highlighted_with_its_version_and_evidence(console, api):
    page = console.page
    name = unique("search")
    make_index(api, name, [("policy.md", policy("sixteen")), ("policy.md", policy("twenty", remote=True)),
                           ("expenses.txt", EXPENSES)])
    console.open()
    console.go("Search")
    page.get_by_label("Query").fill("parental leave weeks")
    page.get_by_label(name).check()
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator("li.hit").first
    expect(first).to_contain_text("policy.md")
    expect(first.get_by_test_id("hit-version")).to_have_text("v2")
    expect(first.locator("mark").filter(has_text="Parental").first).to_be_visible()
    expect(first.locator(".passage")).to_contain_text("twenty weeks")
    expect(first).to_contain_text("dense #1")
    expect(first).to_contain_text("lexical #1")
    expect(first).to_contain_text(name)  # provenance: the index it came from
    console.screenshot("search")
    page.get_by_role("button", name="Evidence record").click()
    evidence = page.get_by_test_id("evidence")
    expect(evidence).to_contain_text('"kind": "search"')
    expect(evidence).to_contain_text('"query": "parental leave weeks"')

    # History: the same question about version 1.
    page.get_by_label("as_of_version").fill("1")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("li.hit").first.get_by_test_id("hit-version")).to_have_text("v1")
    expect(page.locator("li.hit").first.locator(".passage")).to_contain_text("sixteen weeks")
    # A filter that is not JSON is caught before anything is sent.
    page.get_by_label("Filters (JSON)").fill("{year: 2025")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("filters is not valid JSON")


def test_a_deleted_document_is_gone_from_search_and_comes_back_when_restored(console, api):
    page = console.page
    name = unique("deleting")
    make_index(api, name, [("policy.md", policy("sixteen")), ("expenses.txt", EXPENSES)])
    console.open()

    def search_finds(query: str):
        console.go("Search")
        page.get_by_label("Query").fill(query)
        page.get_by_label(name).check()
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator(".evidence-summary")).to_contain_text("result(s)")
        return page.locator("ol.hits")

    expect(search_finds("expense claims approver").locator('li[data-document="expenses.txt"]')).to_have_count(1)
    console.go("Documents")
    choose_index(page, name)
    row = page.get_by_role("table", name="Documents").locator('tr[data-document="expenses.txt"]')
    row.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete “expenses.txt”?")
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("“expenses.txt” deleted (restorable).")
    expect(row).to_have_count(0)
    hits = search_finds("expense claims approver")
    expect(hits.locator('li[data-document="policy.md"]').first).to_be_visible()
    expect(hits.locator('li[data-document="expenses.txt"]')).to_have_count(0)

    console.go("Documents")
    choose_index(page, name)
    page.get_by_label("show deleted").check()
    expect(row).to_contain_text("deleted")
    row.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("status")).to_contain_text("“expenses.txt” restored.")
    expect(search_finds("expense claims approver").locator('li[data-document="expenses.txt"]')).to_have_count(1)

    # Hard delete asks first; cancelling keeps the document.
    console.go("Documents")
    choose_index(page, name)
    row.get_by_role("button", name="Hard delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Hard delete").click()
    expect(page.get_by_role("dialog")).to_contain_text("cannot be undone")
    page.get_by_role("dialog").get_by_role("button", name="Delete for good").click()
    expect(page.get_by_role("status")).to_contain_text("“expenses.txt” deleted for good.")
    page.get_by_label("show deleted").check()
    expect(row).to_have_count(0)
    expect(search_finds("expense claims approver").locator('li[data-document="expenses.txt"]')).to_have_count(0)

    # The index itself, after a confirmation.
    console.go("Indexes")
    page.locator(f'tr[data-index="{name}"]').get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_contain_text("1 document(s)")
    page.get_by_role("dialog").get_by_role("button", name="Delete index").click()
    expect(page.get_by_role("status")).to_contain_text(f"Index “{name}” deleted.")
    expect(page.locator(f'tr[data-index="{name}"]')).to_have_count(0)


def test_markup_in_a_document_is_shown_as_text_never_run(console, api):
    page = console.page
    name = unique("markup")
    hostile = ('Widgets ship on Mondays <img src="x" onerror="window.__injected = 1"> '
               '<script>window.__injected = 2</script> from the north depot.')
    make_index(api, name, [("widgets.txt", hostile)])
    console.open()
    console.go("Search")
    page.get_by_label("Query").fill("widgets ship mondays")
    page.get_by_label(name).check()
    page.get_by_role("button", name="Search", exact=True).click()
    hit = page.locator('li.hit[data-document="widgets.txt"]')
    expect(hit.locator(".passage")).to_contain_text('<img src="x" onerror="window.__injected = 1">')
    expect(hit.locator("mark").filter(has_text="Widgets")).to_have_count(1)
    console.go("Documents")
    choose_index(page, name)
    page.locator('tr[data-document="widgets.txt"]').get_by_role("button", name="Versions").click()
    page.get_by_role("button", name="View v1").click()
    expect(page.get_by_test_id("version-view").locator("pre.doc-text")).to_contain_text("<script>window.__injected = 2</script>")
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("() => window.__injected") is None


def test_the_status_page_shows_each_component_and_the_boundary_policy(console):
    page = console.page
    console.open()
    console.go("Status")
    components = page.get_by_role("table", name="Components")
    expect(components.locator('tr[data-component="metadata_db"]')).to_contain_text("live")
    expect(components.locator('tr[data-component="metadata_db"]')).to_contain_text("kind: sqlite")
    expect(components.locator('tr[data-component="embedder"]')).to_contain_text("all-MiniLM-L6-v2")
    expect(components.locator('tr[data-component="reranker"]')).to_contain_text("available when configured")
    modes = page.get_by_role("table", name="Mode")
    expect(modes.locator('tr[data-name="hybrid"]')).to_contain_text("live")
    expect(modes.locator('tr[data-name="graph"]')).to_contain_text("planned")
    expect(page.get_by_role("table", name="Job class").locator('tr[data-name="visual_rag"]')).to_contain_text("planned")
    policy_table = page.get_by_role("table", name="Boundary policy")
    expect(policy_table.locator('tr[data-boundary="global_public_only"]')).to_contain_text("refused")
    expect(policy_table.locator('tr[data-boundary="account_supercomputer_sync"]')).to_contain_text("same account only")
    expect(policy_table.locator('tr[data-boundary="computer"] td')).to_have_count(4)
    expect(page.get_by_text("service ok")).to_be_visible()
    console.screenshot("status")


def test_an_eval_job_runs_live_and_its_scores_are_charted(console, api):
    page = console.page
    name = unique("evaluated")
    make_index(api, name, [("policy.md", policy("sixteen")), ("expenses.txt", EXPENSES)])
    console.open()
    console.go("Jobs")
    choose_index(page, name)
    page.get_by_label("Params (JSON)").fill(
        '{"modes": ["dense", "lexical", "hybrid"], "queries": {"q1": "parental leave", "q2": "expense approver"},'
        ' "qrels": {"q1": {"policy.md": 1}, "q2": {"expenses.txt": 1}}}')
    page.get_by_role("button", name="Submit eval").click()
    expect(page.get_by_role("status")).to_contain_text("Submitted eval job")
    job = page.get_by_role("table", name="Jobs").locator('tr[data-class="eval"]').first
    expect(job).to_contain_text("succeeded", timeout=SLOW_MS)  # no reload: the event stream or polling
    expect(job).to_contain_text(name)
    runs = page.get_by_role("table", name="Eval runs")
    expect(runs.locator("tbody tr")).to_have_count(1)
    expect(runs.locator("tbody tr")).to_contain_text("1.0000")  # two queries, each answered by its document
    # A second, harder set: the chart and its table gain a run.
    page.get_by_label("Params (JSON)").fill(
        '{"queries": {"q1": "book trains for short trips", "q2": "refund the receipts"},'
        ' "qrels": {"q1": {"policy.md": 1}, "q2": {"expenses.txt": 1}}}')
    page.get_by_role("button", name="Submit eval").click()
    evals = page.get_by_role("table", name="Jobs").locator('tr[data-class="eval"]')
    expect(evals.filter(has_text="succeeded")).to_have_count(2, timeout=SLOW_MS)
    expect(runs.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("eval-chart").locator("canvas")).to_be_visible()
    console.screenshot("jobs")

    # A bad params object is refused with the field that is wrong.
    page.get_by_label("Params (JSON)").fill('{"modes": ["sideways"], "queries": {"q": "x"}, "qrels": {"q": {"a": 1}}}')
    page.get_by_role("button", name="Submit eval").click()
    expect(page.get_by_role("alert")).to_contain_text("validation_error")
    expect(page.get_by_role("alert")).to_contain_text("params.modes.0")
