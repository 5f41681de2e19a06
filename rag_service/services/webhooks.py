"""Webhook endpoints of a project: registration, secrets, the address rule, deliveries.

Deliveries are made by rag_service.services.delivery; this module owns the rules an admin
meets: which URLs are allowed, what a secret looks like, what a listing may show.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets as secrets_lib
import socket
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.errors import NotFound, ValidationFailed
from rag_service.models import Event, Webhook, WebhookDelivery, utcnow
from rag_service.services.common import Principal, audit, fetch_page, get_owned, page_of
from rag_service.services.events import check_event_types, emit

SECRET_PREFIX = "whsec_"
# After a rotation the old secret keeps signing beside the new one this long.
ROTATION_GRACE = timedelta(hours=24)
MAX_URL_LENGTH = 2000


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets_lib.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else None
    try:
        decoded = base64.b64decode(raw + "==", validate=False) if raw else b""
    except ValueError:
        decoded = b""
    if not 24 <= len(decoded) <= 64:
        raise ValidationFailed("secret must be whsec_ followed by base64 of 24 to 64 random bytes", field="secret")
    return secret


def check_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationFailed("events must be a non-empty list of event types (or [\"*\"])", field="events")
    return sorted(check_event_types(events, "events", allow_all=True))


def refused_address(host: str, port: int) -> str | None:
    """Why an endpoint host may not be called (it resolves to an address that is not public),
    or None. Checked when the endpoint is saved and again before every attempt (DNS changes)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"the host {host!r} does not resolve: {exc}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        # Loopback, private, link-local (cloud metadata at 169.254.169.254), shared, reserved,
        # multicast: anything not globally routable could reach inside the operator's network.
        if not address.is_global or address.is_multicast:
            return f"the host {host!r} resolves to {address}, which is not a public address"
    return None


def check_url(url: Any, allow_private: bool) -> str:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"url must be an http(s) URL of at most {MAX_URL_LENGTH} characters", field="url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url must be an absolute http:// or https:// URL", field="url")
    if parts.username or parts.password:
        raise ValidationFailed("url must not carry credentials; receivers verify the signature instead", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValidationFailed("url has an invalid port", field="url") from None
    if not allow_private:
        reason = refused_address(parts.hostname, port)
        if reason:
            raise ValidationFailed(f"{reason} (RAG_WEBHOOK_ALLOW_PRIVATE=true allows it)", field="url",
                                   reason="private_address")
    return url


def webhook_view(hook: Webhook, secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": hook.id, "url": hook.url, "events": hook.events, "description": hook.description,
        "enabled": hook.enabled, "disabled_reason": hook.disabled_reason, "disabled_at": hook.disabled_at,
        "created_at": hook.created_at, "updated_at": hook.updated_at,
    }
    if secret is not None:  # only the answers that create or rotate it
        out["secret"] = secret
    return out


def delivery_view(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id, "webhook_id": d.webhook_id, "event_id": d.event_id, "event_type": d.event_type,
        "event_seq": d.event_seq, "document_id": d.document_id, "status": d.status, "attempts": d.attempts,
        "status_code": d.last_status_code, "latency_ms": d.last_latency_ms, "error": d.last_error,
        "next_retry_at": d.next_attempt_at if d.status == "pending" else None,
        "history": d.history, "redelivery_of": d.redelivery_of, "created_at": d.created_at,
        "delivered_at": d.delivered_at,
    }


class WebhookService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def _owned(self, principal: Principal, webhook_id: str) -> Webhook:
        return get_owned(self.ctx.db, Webhook, webhook_id, principal.project_id, "webhook", webhook_id=webhook_id)

    def create(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        url = check_url(body.get("url"), self.ctx.settings.webhook_allow_private)
        events = check_events(body.get("events"))
        secret = check_secret(body["secret"]) if body.get("secret") is not None else new_secret()
        hook = Webhook(project_id=principal.project_id, url=url, events=events, secret=secret,
                       description=body.get("description") or "", created_by_key_id=principal.key_id)
        with self.ctx.db.session() as s:
            s.add(hook)
            audit(s, principal, "webhook.create", "webhook", hook.id, url=url, events=events)
            s.commit()
            s.refresh(hook)
        return webhook_view(hook, secret=secret)

    def list(self, principal: Principal, page: int, per_page: int) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            q = select(Webhook).where(Webhook.project_id == principal.project_id)
            rows, total = fetch_page(s, q, (Webhook.created_at, Webhook.id), page, per_page)
        return page_of([webhook_view(h) for h in rows], total, page, per_page)

    def get(self, principal: Principal, webhook_id: str) -> dict[str, Any]:
        return webhook_view(self._owned(principal, webhook_id))

    def update(self, principal: Principal, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        hook = self._owned(principal, webhook_id)
        changes: dict[str, Any] = {}
        if body.get("url") is not None:
            changes["url"] = check_url(body["url"], self.ctx.settings.webhook_allow_private)
        if body.get("events") is not None:
            changes["events"] = check_events(body["events"])
        if body.get("description") is not None:
            changes["description"] = body["description"]
        if body.get("enabled") is not None:
            changes["enabled"] = bool(body["enabled"])
            if changes["enabled"]:  # re-enabled: what waited for it goes out again, in order
                changes.update(disabled_reason=None, disabled_at=None)
        with self.ctx.db.session() as s:
            row = s.get(Webhook, hook.id)
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.add(row)
            audit(s, principal, "webhook.update", "webhook", hook.id, changes=sorted(changes))
            s.commit()
            s.refresh(row)
        self._wake()
        return webhook_view(row)

    def delete(self, principal: Principal, webhook_id: str) -> None:
        hook = self._owned(principal, webhook_id)
        with self.ctx.db.session() as s:
            s.exec(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
            s.delete(s.get(Webhook, hook.id))
            audit(s, principal, "webhook.delete", "webhook", hook.id, url=hook.url)
            s.commit()

    def rotate_secret(self, principal: Principal, webhook_id: str, secret: str | None = None) -> dict[str, Any]:
        hook = self._owned(principal, webhook_id)
        new = check_secret(secret) if secret is not None else new_secret()
        with self.ctx.db.session() as s:
            row = s.get(Webhook, hook.id)
            row.previous_secret, row.previous_secret_until = row.secret, utcnow() + ROTATION_GRACE
            row.secret, row.updated_at = new, utcnow()
            s.add(row)
            audit(s, principal, "webhook.rotate_secret", "webhook", hook.id)
            s.commit()
            s.refresh(row)
        return webhook_view(row, secret=new) | {"previous_secret_valid_until": row.previous_secret_until}

    def send_test(self, principal: Principal, webhook_id: str) -> dict[str, Any]:
        hook = self._owned(principal, webhook_id)
        if not hook.enabled:
            raise ValidationFailed("the webhook is disabled; enable it (PATCH enabled=true) to send a test",
                                   field="enabled")
        with self.ctx.db.session() as s:
            audit(s, principal, "webhook.test", "webhook", hook.id)
            event = emit(s, principal.project_id, "webhook.test",
                         {"webhook_id": hook.id, "url": hook.url, "message": "a test event, sent on request"},
                         webhook_id=hook.id)
            s.commit()
            delivery = s.exec(select(WebhookDelivery).where(WebhookDelivery.event_seq == event.seq,
                                                            WebhookDelivery.webhook_id == hook.id)).one()
        self._wake()
        return delivery_view(delivery)

    def deliveries(self, principal: Principal, webhook_id: str, page: int, per_page: int,
                   status: str | None = None) -> dict[str, Any]:
        hook = self._owned(principal, webhook_id)
        with self.ctx.db.session() as s:
            q = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
            if status:
                q = q.where(WebhookDelivery.status == status)
            rows, total = fetch_page(s, q, (WebhookDelivery.created_at.desc(), WebhookDelivery.id), page, per_page)
        return page_of([delivery_view(d) for d in rows], total, page, per_page)

    def redeliver(self, principal: Principal, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        """A new delivery of the same event, under the same webhook-id (receivers deduplicate)."""
        hook = self._owned(principal, webhook_id)
        with self.ctx.db.session() as s:
            original = s.get(WebhookDelivery, delivery_id)
            if original is None or original.webhook_id != hook.id or original.project_id != principal.project_id:
                raise NotFound("delivery not found", delivery_id=delivery_id)
            if s.get(Event, original.event_seq) is None:
                raise NotFound("the event of this delivery is past retention (RAG_EVENT_RETENTION_HOURS)",
                               delivery_id=delivery_id)
            again = WebhookDelivery(project_id=original.project_id, webhook_id=hook.id, event_seq=original.event_seq,
                                    event_id=original.event_id, event_type=original.event_type,
                                    document_id=original.document_id, redelivery_of=original.id)
            s.add(again)
            audit(s, principal, "webhook.redeliver", "webhook", hook.id, delivery_id=delivery_id)
            s.commit()
            s.refresh(again)
        self._wake()
        return delivery_view(again)

    def _wake(self) -> None:
        deliverer = getattr(self.ctx, "deliverer", None)
        if deliverer is not None:
            deliverer.wake()
