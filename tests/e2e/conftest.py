"""The console in a real browser: one real `rag-service serve` for the module (SQLite and the
embedded vector store in a temporary data directory, started as a subprocess and stopped with
everything it started), and Debian's chromium driven by Playwright (its own browser download is
not reachable here: `scripts/test.sh` installs chromium with apt-get when it is missing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.processes import free_port, stop, wait_ready

CHROMIUM = os.environ.get("RAG_TEST_CHROMIUM", "/usr/bin/chromium")
ADMIN_KEY = "rag_e2e_console_admin"
ARTIFACTS = Path(os.environ.get("RAG_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts" / "console")
# Waits that include parsing and embedding on a busy 2-core machine.
SLOW_MS = 90_000


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> str:
    """The base URL of a live service whose admin key is ADMIN_KEY."""
    data = tmp_path_factory.mktemp("console-e2e")
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(data / "data"), "RAG_HOST": "127.0.0.1", "RAG_PORT": str(port),
           "RAG_BOOTSTRAP_KEY": ADMIN_KEY, "RAG_DATABASE_URL": "", "RAG_QDRANT_URL": "",
           "RAG_EMBEDDING_BACKEND": "torch", "RAG_EMBEDDING_PRECISION": "fp32", "RAG_RATE_LIMIT_PER_MINUTE": "0",
           "RAG_CORS_ORIGINS": "", "RAG_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    log_path = data / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "rag_service.cli", "serve"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, server, log_path)
            yield base
        finally:
            stop(server)


@pytest.fixture(scope="module")
def api(service) -> httpx.Client:
    """The HTTP API with the admin key, for what a test needs to exist before the page opens."""
    with httpx.Client(base_url=service, headers={"X-API-Key": ADMIN_KEY}, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"chromium is not installed at {CHROMIUM} (scripts/test.sh installs it with apt-get)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright  # only the browser tests need it

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


class Console:
    """One browser tab on the console, recording every request it makes and every error it throws."""

    def __init__(self, page, base: str) -> None:
        self.page = page
        self.base = base
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: "Content Security Policy" in message.text and self.errors.append(message.text))

    def open(self, key: str | None = ADMIN_KEY) -> None:
        self.page.goto(f"{self.base}/console/")
        if key is not None:
            self.enter_key(key)
            self.page.get_by_role("navigation", name="Console").wait_for()

    def enter_key(self, key: str) -> None:
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Use this key").click()

    def go(self, view: str) -> None:
        self.page.get_by_role("navigation", name="Console").get_by_role("link", name=view, exact=True).click()
        self.page.get_by_role("heading", level=2).first.wait_for()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def foreign_requests(self) -> list[str]:
        origin = urlsplit(self.base)[:2]
        return [url for url in self.requests if urlsplit(url)[:2] != origin and not url.startswith(("data:", "blob:"))]


@pytest.fixture
def console(browser, service):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    tab = Console(page, service)
    try:
        yield tab
    finally:
        context.close()
    # Checked for every test: the console is a same-origin client that raises no errors.
    assert tab.foreign_requests() == [], tab.foreign_requests()
    assert tab.errors == [], tab.errors
