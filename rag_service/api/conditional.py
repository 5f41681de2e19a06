"""Conditional uploads over HTTP: `If-Match` names the version an upload expects to replace,
as the ETag this service sent (`"vN"`, `W/"vN"`) or a bare number; `*` or empty means none."""

from __future__ import annotations

from rag_service.errors import ValidationFailed
from rag_service.services.values import parse_int64


def expected_version(form_value: str | None, if_match: str | None) -> int | None:
    """The expected latest version: the form's `if_version` wins over the `If-Match` header."""
    if form_value is not None and form_value.strip() != "":
        return parse_int64(form_value, "if_version")
    return parse_if_match(if_match)


def parse_if_match(value: str | None) -> int | None:
    if value is None or value.strip() in ("", "*"):
        return None
    raw = value.strip().removeprefix("W/").strip('"').removeprefix("v")
    if not raw.isascii() or not raw.isdigit():
        raise ValidationFailed("If-Match must be an ETag returned by this service, like \"v3\"", field="If-Match")
    return parse_int64(raw, "If-Match")
