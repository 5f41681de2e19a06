"""Answers of the admin routes: /v1/keys, /v1/webhooks (with deliveries), /v1/audit-log
(services/auth.py `key_view`, services/webhooks.py, services/audit.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from rag_service.api.schemas.common import Page, ResponseModel


class ApiKeyView(ResponseModel):
    id: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    role: str = Field(description="reader, editor or admin")
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class CreatedApiKey(ApiKeyView):
    key: str = Field(description="the key itself: shown only in this answer")


class ApiKeyPage(Page):
    items: list[ApiKeyView]


class WebhookView(ResponseModel):
    id: str
    url: str
    events: list[str] = Field(description='event types, or ["*"] for all')
    description: str
    enabled: bool
    disabled_reason: str | None = Field(description="why deliveries stopped (the last retry failed)")
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookView):
    secret: str = Field(description="whsec_<base64>: shown only when created and when rotated")


class RotatedWebhook(WebhookWithSecret):
    previous_secret_valid_until: datetime | None = Field(description="the old secret signs beside the new one "
                                                                     "until then")


class WebhookPage(Page):
    items: list[WebhookView]


class Delivery(ResponseModel):
    """One event owed to one endpoint."""

    id: str
    webhook_id: str
    event_id: str = Field(description="the webhook-id header: the same for a redelivery")
    event_type: str
    event_seq: int
    document_id: str | None
    status: str = Field(description="pending, delivering, succeeded or failed")
    attempts: int
    status_code: int | None = Field(description="the last attempt's HTTP status")
    latency_ms: float | None
    error: str | None
    next_retry_at: datetime | None = Field(description="pending only")
    history: list[dict[str, Any]] = Field(description="every attempt: at, status_code, latency_ms, error")
    redelivery_of: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(Page):
    items: list[Delivery]


class AuditEntry(ResponseModel):
    id: int
    created_at: datetime
    action: str
    key_id: str | None
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]


class AuditPage(Page):
    items: list[AuditEntry]
