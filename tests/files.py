"""Real files of every accepted format, made in the test run (nothing downloaded)."""

from __future__ import annotations

import io
import json


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal PDF with a real text layer, one page per string."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        lines = [text[j : j + 80] for j in range(0, len(text), 80)] or [""]
        ops = ["BT", "/F1 11 Tf", "72 720 Td", "14 TL"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", "replace")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_ids[i] + 1} 0 R "
            f"/Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def docx_bytes(heading: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, 1)
    for p in paragraphs:
        document.add_paragraph(p)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def sample_files(fact: str = "The quokka is native to Rottnest Island.") -> dict[str, bytes]:
    """One file per accepted format, each carrying `fact` as searchable text."""
    return {
        "notes.txt": f"Field notes.\n\n{fact} Plain text paragraph.".encode(),
        "guide.md": f"# Guide\n\n{fact} Markdown paragraph.\n\n## More\n\nOther words.".encode(),
        "page.html": f"<html><body><h1>Page</h1><p>{fact} HTML paragraph.</p></body></html>".encode(),
        "report.pdf": pdf_bytes([f"Report page one. {fact}", "Second page about something else."]),
        "memo.docx": docx_bytes("Memo", [f"{fact} Word paragraph."]),
        "table.csv": f"topic,fact\nanimals,{fact}\nweather,rain\n".encode(),
        "data.json": json.dumps({"record": {"fact": fact, "kind": "json"}}).encode(),
    }
