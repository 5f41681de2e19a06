"""The console's files, without a browser: it loads nothing from another host (it has to work
with no internet access), and its Content-Security-Policy allows its import map (a changed map
with a stale hash is a blank page in every browser)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import rag_service

CONSOLE = Path(rag_service.__file__).parent / "console"
INDEX = (CONSOLE / "index.html").read_text()
IMPORT_MAP = re.search(r'<script type="importmap">(.*?)</script>', INDEX, re.S).group(1)
# Static `import … from "x"`, `export … from "x"`, side-effect `import "x"` and dynamic `import("x")`.
SPECIFIER = re.compile(r"""(?:(?:^|;)\s*(?:import|export)\s*(?:[\w*{}\s,$]+?\s*from\s*)?|\bimport\(\s*)["']([^"']+)["']""",
                       re.M)


def test_the_import_map_is_allowed_by_the_pages_content_security_policy():
    digest = base64.b64encode(hashlib.sha256(IMPORT_MAP.encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', INDEX).group(1)
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert f"'sha256-{digest}'" in directives["script-src"].split()
    assert directives["connect-src"] == "'self'" and directives["default-src"] == "'self'"


def test_every_module_the_console_imports_is_one_of_its_own_files():
    imports = json.loads(IMPORT_MAP)["imports"]
    for target in imports.values():
        assert target.startswith("./vendor/") and (CONSOLE / target).is_file(), target
    modules = sorted(CONSOLE.rglob("*.js"))
    assert len(modules) > 10
    for module in modules:
        for specifier in SPECIFIER.findall(module.read_text()):
            if specifier.startswith("."):
                assert (module.parent / specifier).resolve().is_file(), (module, specifier)
            else:
                assert specifier in imports, (module, specifier)  # a bare name: vendored, never a URL
    for attribute in re.findall(r'(?:src|href)="([^"]+)"', INDEX):
        assert attribute.startswith("data:") or (CONSOLE / attribute).is_file(), attribute


def test_each_vendored_library_carries_its_licence():
    for library in ("preact", "htm", "uplot", "diff"):
        assert (CONSOLE / "vendor" / library / "LICENSE").read_text().strip(), library
        assert f"| [{library}" in (CONSOLE / "vendor" / "README.md").read_text().lower()
