"""Text-like formats parse straight into the element categories the chunker keys on."""

from __future__ import annotations

import json

import pytest

from pipelines.parse import ParseFailure, parse_document
from tests.files import sample_files


def _elements(data: bytes | str, filename: str) -> list[tuple[str, str]]:
    raw = data.encode() if isinstance(data, str) else data
    return [(e.category, e.text) for e in parse_document(raw, filename)[1]]


def test_plain_text_titles_bullets_and_wrapped_paragraphs():
    text = ("Annual Field Report\n\nThe survey ran for two\nweeks in the dry season.\n\n"
            "• first bullet point\n\n3. A numbered finding\n\nShort line, with a comma,")
    assert _elements(text, "r.txt") == [
        ("Title", "Annual Field Report"),
        ("NarrativeText", "The survey ran for two weeks in the dry season."),
        ("ListItem", "first bullet point"),
        ("ListItem", "3. A numbered finding"),
        ("NarrativeText", "Short line, with a comma,"),
    ]


def test_markdown_headings_lists_tables_and_code():
    md = ("# Guide\n\nSome *emphasis* and a [link](http://x).\n\n- one\n- two\n\n"
          "| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode here\n```\n\nSetext Title\n------------\n")
    assert _elements(md, "g.md") == [
        ("Title", "Guide"), ("NarrativeText", "Some emphasis and a link."), ("ListItem", "one"), ("ListItem", "two"),
        ("Table", "a | b"), ("Table", "1 | 2"), ("CodeSnippet", "code here"), ("Title", "Setext Title"),
    ]


def test_html_blocks_in_order_without_scripts_styles_or_head():
    page = ("<html><head><title>Tab title</title><style>p{}</style></head><body>"
            "<h1>Main <i>Heading</i></h1><script>var secret = 1;</script><p>First <b>bold</b>\n paragraph.</p>"
            "<ul><li>item one</li><li>item <a href='#'>two</a></li></ul>"
            "<table><tr><th>name</th><th>value</th></tr><tr><td> x </td><td><p>42</p></td></tr></table>"
            "<pre>  indented\n  code</pre><div>loose text<br>after break</div></body></html>")
    assert _elements(page, "p.html") == [
        ("Title", "Main Heading"), ("NarrativeText", "First bold paragraph."), ("ListItem", "item one"),
        ("ListItem", "item two"), ("Table", "name | value"), ("Table", "x | 42"),
        ("CodeSnippet", "  indented\n  code"), ("NarrativeText", "loose text after break"),
    ]


def test_csv_header_is_the_title_and_rows_are_table_elements():
    big_cell = "y" * 200_000  # over the csv module's default field limit
    data = f'city;note\nOslo;"two\nlines"\nLima;{big_cell}\n'
    assert _elements(data, "t.csv") == [("Title", "city | note"), ("Table", "Oslo | two\nlines"),
                                        ("Table", f"Lima | {big_cell}")]


def test_json_is_flattened_to_path_value_lines():
    data = json.dumps({"a": {"b": [1, {"c": "deep"}]}, "d": None})
    assert _elements(data, "d.json") == [("NarrativeText", "a.b[0]: 1"), ("NarrativeText", "a.b[1].c: deep"),
                                         ("NarrativeText", "d: None")]


@pytest.mark.parametrize("filename,data", [("bad.json", b'{"a": '), ("latin.txt", "caf\xe9".encode("latin-1")),
                                           ("deep.json", b"[" * 100_000 + b"]" * 100_000)])
def test_unreadable_text_like_files_are_parse_failures(filename, data):
    with pytest.raises(ParseFailure):
        parse_document(data, filename)


def test_every_sample_format_keeps_its_heading_as_a_title():
    files = sample_files()
    for name in ("guide.md", "page.html", "memo.docx"):
        assert _elements(files[name], name)[0][0] == "Title", name
    assert any("quokka" in text for _, text in _elements(files["report.pdf"], "report.pdf"))
