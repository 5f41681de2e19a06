"""/docs and /redoc work on a machine with no internet: every file the pages load comes
from the service itself, and the pages need no API key."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

# what a page's <script src>, <link href> and <img src> may be served as
ASSET_TYPES = {
    "script": ("application/javascript", "text/javascript"),
    "stylesheet": ("text/css",),
    "icon": ("image/",),
}


class _Assets(HTMLParser):
    """(kind, url) of every file the page makes the browser fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.found.append(("script", values["src"]))
        elif tag == "link" and values.get("href"):
            rel = (values.get("rel") or "").lower()
            self.found.append(("stylesheet" if "stylesheet" in rel else "icon", values["href"]))
        elif tag == "img" and values.get("src"):
            self.found.append(("icon", values["src"]))


def _assets(html: str) -> list[tuple[str, str]]:
    parser = _Assets()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_loads_everything_from_the_service(app_factory, page):
    client, _ = app_factory()
    r = client.get(page)  # no API key: the docs are public
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    html = r.text

    assert re.findall(r"https?://[^\s\"'<>]+", html) == []  # no CDN, no web fonts, no remote favicon
    assets = _assets(html)
    kinds = {kind for kind, _ in assets}
    assert "script" in kinds  # the page's UI itself is one of the files served here
    if page == "/docs":
        assert "stylesheet" in kinds
    for kind, url in assets:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
        assert asset.headers["content-type"].startswith(ASSET_TYPES[kind]), (url, asset.headers["content-type"])


def test_docs_pages_read_the_service_schema(app_factory):
    client, _ = app_factory()
    swagger, redoc = client.get("/docs").text, client.get("/redoc").text
    assert re.search(r"""url: *['"]/openapi\.json['"]""", swagger)
    assert re.search(r"""spec-url=['"]/openapi\.json['"]""", redoc)
    # Swagger UI's default online validator badge would call a remote site for every page view
    assert re.search(r"""['"]validatorUrl['"]: *null""", swagger)
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "RAG service"
