"""Structured logs: one JSON object per line, tagged with the request id.

What is logged is chosen so a log file can be shared with an operator: route
templates (never raw paths, which hold document names), status, timing, the key's
public id and project. Never an API key, a query or document text. As a second
line of defence, anything shaped like one of our keys (`rag_` + 43 url-safe
characters) is masked in every message, whoever wrote it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_KEY_SHAPE = re.compile(r"rag_[A-Za-z0-9_\-]{20,}")
# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    return _KEY_SHAPE.sub("rag_***", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, (int, float, bool)) or value is None else redact(str(value))
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def dict_config(level: str = "info", fmt: str = "json") -> dict[str, Any]:
    """logging.config.dictConfig for the service and uvicorn (uvicorn applies it in
    every worker process). uvicorn's access log is off: it prints raw paths, which
    hold document names; `rag_service.access` logs each request by route template."""
    formatter = {"()": "rag_service.logs.JsonFormatter"} if fmt == "json" else {
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
