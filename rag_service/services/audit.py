"""Reading evidence records and the append-only audit log (same project only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.models import AuditLog, Evidence, as_utc
from rag_service.services.common import Principal, fetch_page, get_owned, page_of


class AuditService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def evidence(self, principal: Principal, evidence_id: str) -> dict[str, Any]:
        record = get_owned(self.ctx.db, Evidence, evidence_id, principal.project_id, "evidence", evidence_id=evidence_id)
        return {"evidence_id": record.id, "kind": record.kind, "created_at": record.created_at, **record.body}

    def log(self, principal: Principal, action: str | None, since: datetime | None, until: datetime | None,
            page: int, per_page: int) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            q = select(AuditLog).where(AuditLog.project_id == principal.project_id)
            if action:
                q = q.where(AuditLog.action == action)
            if since:
                q = q.where(AuditLog.created_at >= as_utc(since))
            if until:
                q = q.where(AuditLog.created_at <= as_utc(until))
            rows, total = fetch_page(s, q, (AuditLog.id,), page, per_page)
        items = [{"id": r.id, "created_at": r.created_at, "action": r.action, "key_id": r.key_id,
                  "target_type": r.target_type, "target_id": r.target_id, "detail": r.detail} for r in rows]
        return page_of(items, total, page, per_page)

