"""Lifecycle events: the transactional outbox, and reading it back in order.

`emit` is called inside the SQL transaction of the change it reports and adds the event row
and one delivery row per subscribed webhook endpoint there, so the change and its event
commit together or not at all. The stream (`GET /v1/events`) and the webhook deliverer read
the rows back by `seq`.

Sequence numbers are handed out when a row is inserted, not when its transaction commits, so
two transactions could commit seq 11 before seq 10 and a reader past 11 would never see 10.
Event writers therefore take one transaction-scoped lock before their seq (SQLite holds its
one write lock anyway; PostgreSQL: an advisory lock), which makes seq order commit order: a
reader that sees seq N has seen every seq below N that will ever exist. `emit` is the last
write of every transaction that calls it, so the lock is held only until that commit, and no
transaction waits for a row while holding it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import delete, func, or_, text
from sqlalchemy import event as sa_event
from sqlmodel import Session, select

from rag_service.errors import ValidationFailed
from rag_service.models import Document, DocumentVersion, Event, Webhook, WebhookDelivery, as_utc, utcnow

EVENT_TYPES = (
    "document.version.ready",
    "document.version.failed",
    "document.deleted",
    "document.restored",
    "document.purged",
    "index.reindexed",
    "job.succeeded",
    "job.failed",
    "webhook.test",
)
# pg_advisory_xact_lock key of event writers (any constant; "rag_evnt" in ASCII).
EVENT_LOCK_KEY = 0x7261675F65766E74
RESULT_SUMMARY_BYTES = 4096


# Called after a commit that wrote webhook deliveries (the in-process deliverer's wake): it sends at once
# instead of at its next poll. Other processes (workers) find the rows when they poll.
_after_commit: set[Callable[[], None]] = set()


def notify_after_commit(callback: Callable[[], None], enabled: bool = True) -> None:
    (_after_commit.add if enabled else _after_commit.discard)(callback)


@sa_event.listens_for(Session, "after_commit")
def _committed(session) -> None:
    if session.info.pop("deliveries_written", False):
        for callback in list(_after_commit):
            callback()


def emit(s: Session, project_id: str, event_type: str, data: dict[str, Any], *, index_id: str | None = None,
         document_id: str | None = None, webhook_id: str | None = None) -> Event:
    """Add the event and its deliveries to the caller's transaction; the caller commits next,
    with no other write in between (see the module's docstring)."""
    if s.bind.dialect.name == "postgresql":
        s.exec(text("SELECT pg_advisory_xact_lock(:key)"), params={"key": EVENT_LOCK_KEY})
    event = Event(project_id=project_id, type=event_type, index_id=index_id, document_id=document_id,
                  webhook_id=webhook_id, data=data)
    s.add(event)
    s.flush()  # the seq, which orders the deliveries
    hooks = s.exec(select(Webhook).where(Webhook.project_id == project_id, Webhook.enabled.is_(True))).all()
    for hook in hooks:
        if webhook_id is not None and hook.id != webhook_id:
            continue
        if webhook_id is None and not subscribed(hook.events, event_type):
            continue
        s.add(WebhookDelivery(project_id=project_id, webhook_id=hook.id, event_seq=event.seq, event_id=event.id,
                              event_type=event_type, document_id=document_id))
        # Only a commit that owes a delivery wakes a deliverer: each wake is a claim query, and
        # an upload's events in a project without webhooks woke one for nothing several times.
        s.info["deliveries_written"] = True
    return event


def check_event_types(types: Iterable[str], field: str, allow_all: bool = False) -> set[str]:
    """The named event types, or validation_error naming those that do not exist."""
    types = set(types)
    unknown = sorted(types - set(EVENT_TYPES) - ({"*"} if allow_all else set()))
    if unknown:
        raise ValidationFailed(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}", field=field)
    return types


def subscribed(events: Iterable[str], event_type: str) -> bool:
    return "*" in events or event_type in events


def body_of(event: Event) -> str:
    """The JSON body every receiver gets for this event (the same bytes on every attempt)."""
    return json.dumps({"type": event.type, "timestamp": _iso(event), "data": event.data},
                      separators=(",", ":"), ensure_ascii=False, default=str)


def _iso(event: Event) -> str:
    return as_utc(event.created_at).isoformat().replace("+00:00", "Z")


# -- what each kind of change reports ------------------------------------------------
def emit_document(s: Session, event_type: str, doc: Document, version: DocumentVersion | None = None,
                  **extra: Any) -> Event:
    """A document event; `version` defaults to the served one (or the latest, if none is served)."""
    version = version or reported_version(s, doc)
    data = {
        "index_id": doc.index_id, "document_id": doc.id, "name": doc.name,
        "version": version.version if version else None,
        "content_hash": version.content_hash if version else None,
        "chunk_count": version.chunk_count if version else 0,
        **extra,
    }
    return emit(s, doc.project_id, event_type, data, index_id=doc.index_id, document_id=doc.id)


def reported_version(s: Session, doc: Document) -> DocumentVersion | None:
    """The version a document event describes: the served one, or the latest if none is served
    (read it before deleting the rows, when the event goes out after the delete)."""
    number = doc.current_version or doc.latest_version
    return s.exec(select(DocumentVersion).where(DocumentVersion.document_id == doc.id,
                                                DocumentVersion.version == number)).first()


def emit_version_outcome(s: Session, version_id: str, error: str | None = None) -> Event | None:
    """document.version.ready or .failed for a version whose status this transaction just set."""
    version = s.get(DocumentVersion, version_id)
    doc = s.get(Document, version.document_id) if version else None
    if doc is None:
        return None
    if error is None:
        return emit_document(s, "document.version.ready", doc, version, current_version=doc.current_version,
                             current=doc.current_version == version.version)
    return emit_document(s, "document.version.failed", doc, version, error=error,
                         current_version=doc.current_version)


def job_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The job's result, or its scalar fields when the whole would make a large event."""
    if result is None:
        return None
    if len(json.dumps(result, default=str)) <= RESULT_SUMMARY_BYTES:
        return result
    small = {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool)) or v is None}
    return small | {"truncated": True, "keys": sorted(result)}


# -- reading back ----------------------------------------------------------------------
def read_after(s: Session, project_id: str, after: int, limit: int = 200, types: set[str] | None = None,
               excluded_indexes: Iterable[str] = ()) -> tuple[list[Event], int]:
    """(the project's events after `after`, the position read up to): events of other projects,
    of types not asked for, or of indexes the reader's boundary may not see are skipped."""
    upto = s.exec(select(func.max(Event.seq)).where(Event.seq > after)).one()
    if upto is None:
        return [], after
    q = select(Event).where(Event.project_id == project_id, Event.seq > after, Event.seq <= upto)
    if types:
        q = q.where(Event.type.in_(sorted(types)))
    excluded = list(excluded_indexes)
    if excluded:
        q = q.where(or_(Event.index_id.is_(None), Event.index_id.not_in(excluded)))
    rows = list(s.exec(q.order_by(Event.seq).limit(limit)).all())
    if len(rows) == limit:
        upto = rows[-1].seq
    return rows, upto


def oldest_seq(s: Session) -> int | None:
    return s.exec(select(Event.seq).order_by(Event.seq).limit(1)).first()


def latest_seq(s: Session, project_id: str) -> int:
    seq = s.exec(select(Event.seq).where(Event.project_id == project_id).order_by(Event.seq.desc()).limit(1)).first()
    return seq or 0


def prune(s: Session, retention_hours: float) -> int:
    """Drop events past retention, with their settled deliveries; an event still owed to an
    endpoint (pending, or waiting on a disabled one) stays until it is delivered or given up."""
    cutoff = utcnow() - timedelta(hours=retention_hours)
    owed = select(WebhookDelivery.event_seq).where(WebhookDelivery.status.in_(("pending", "delivering")))
    s.exec(delete(WebhookDelivery).where(WebhookDelivery.created_at < cutoff,
                                         WebhookDelivery.status.in_(("succeeded", "failed"))))
    gone = s.exec(delete(Event).where(Event.created_at < cutoff, Event.seq.not_in(owed)))
    s.commit()
    return gone.rowcount or 0
