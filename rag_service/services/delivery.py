"""The webhook deliverer: leases delivery rows, signs and sends them, retries with backoff.

It runs as threads in the API process (RAG_WEBHOOK_DELIVERY=inprocess) and in every
`rag-service worker`; leases make any number of them safe together, as for jobs. A delivery
is claimed only when no earlier delivery of the same document to the same endpoint is still
owed, so one endpoint sees one document's changes in order. A process that dies mid-attempt
leaves a lease that expires, and the delivery is sent again (at least once; receivers
deduplicate on `webhook-id`, which never changes for an event).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import and_, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import select
from standardwebhooks.webhooks import Webhook as Signer

from rag_service.context import ServiceContext
from rag_service.models import Event, Webhook, WebhookDelivery, as_utc, utcnow
from rag_service.services.common import audit
from rag_service.services.events import body_of, notify_after_commit, prune
from rag_service.services.loops import ClaimLoops
from rag_service.services.webhooks import refused_address

log = logging.getLogger(__name__)
HISTORY_KEPT = 50
PRUNE_EVERY_S = 300.0
USER_AGENT = "rag-service-webhooks/0.1"
PAST_RETENTION = "the event is past retention; it can no longer be sent"


def signature_header(hook: Webhook, msg_id: str, at: datetime, body: str) -> str:
    """Standard Webhooks signatures, space-separated: the current secret's, and during a
    rotation's grace period the previous one's (a receiver holding either verifies)."""
    secrets = [hook.secret]
    until = hook.previous_secret_until
    if hook.previous_secret and until is not None and as_utc(until) > at:
        secrets.append(hook.previous_secret)
    return " ".join(Signer(s).sign(msg_id, at, body) for s in secrets)


class Deliverer(ClaimLoops):
    thread_name = "webhook-deliverer"

    def __init__(self, ctx: ServiceContext, concurrency: int | None = None, poll_seconds: float = 0.5) -> None:
        settings = ctx.settings
        super().__init__(concurrency or settings.webhook_concurrency, poll_seconds)
        self.ctx = ctx
        self.schedule = settings.webhook_retry_delays
        self.lease_seconds = settings.webhook_lease_seconds
        self._last_prune = 0.0
        # No redirects (a 3xx is a failed attempt), no proxies from the environment.
        self.http = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False, trust_env=False)

    def start(self) -> None:
        notify_after_commit(self.wake)
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        notify_after_commit(self.wake, enabled=False)
        super().stop(timeout)
        self.http.close()

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = time.monotonic()
        with self.ctx.db.session() as s:
            gone = prune(s, self.ctx.settings.event_retention_hours)
        if gone:
            log.info("pruned %d events past retention", gone)

    # -- claiming ----------------------------------------------------------------------
    def _claimable(self, now):
        return or_(and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
                   and_(WebhookDelivery.status == "delivering", WebhookDelivery.lease_expires_at < now))

    def claim(self, limit: int = 1) -> list[WebhookDelivery]:
        """Up to `limit` deliveries, leased in one transaction (a change to several endpoints goes
        out with one claim and one record, not one pair per endpoint)."""
        now = utcnow()
        earlier = aliased(WebhookDelivery)
        # One document's deliveries to one endpoint go out one at a time, oldest change first:
        # a later one is not claimable while an earlier one is owed, so a batch never holds both.
        waits = exists().where(earlier.webhook_id == WebhookDelivery.webhook_id,
                               earlier.document_id == WebhookDelivery.document_id,
                               earlier.event_seq < WebhookDelivery.event_seq,
                               earlier.status.in_(("pending", "delivering")))
        claimed: list[str] = []
        with self.ctx.db.session() as s:
            q = (select(WebhookDelivery.id).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                 .where(self._claimable(now), Webhook.enabled.is_(True), ~waits)
                 .order_by(WebhookDelivery.event_seq, WebhookDelivery.created_at).limit(limit + 4))
            for delivery_id in list(s.exec(q).all()):
                won = s.exec(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, self._claimable(now))
                             .values(status="delivering", lease_owner=self.owner,
                                     lease_expires_at=now + timedelta(seconds=self.lease_seconds)))
                if won.rowcount == 1:
                    claimed.append(delivery_id)
                    if len(claimed) == limit:
                        break
            if not claimed:
                s.rollback()
                return []
            s.commit()
            rows = s.exec(select(WebhookDelivery).where(WebhookDelivery.id.in_(claimed))).all()
        return sorted(rows, key=lambda d: (d.event_seq, d.created_at))

    @property
    def batch_size(self) -> int:
        # A batch is sent one attempt after another: all of them must fit in the lease, even if
        # every receiver runs into the timeout.
        return max(1, min(16, int(self.lease_seconds // (2 * max(self.ctx.settings.webhook_timeout_s, 0.1)))))

    def run_once(self) -> bool:
        self._maybe_prune()
        batch = self.claim(self.batch_size)
        if not batch:
            return False
        with self.ctx.db.session() as s:
            events = {e.seq: e for e in s.exec(select(Event).where(Event.seq.in_({d.event_seq for d in batch})))}
            hooks = {h.id: h for h in s.exec(select(Webhook).where(Webhook.id.in_({d.webhook_id for d in batch})))}
        outcomes = [(d, hooks.get(d.webhook_id), events.get(d.event_seq), *self.attempt(d, hooks.get(d.webhook_id),
                                                                                       events.get(d.event_seq)))
                    for d in batch]
        self._record(outcomes)
        return True

    # -- one attempt -------------------------------------------------------------------
    def attempt(self, delivery: WebhookDelivery, hook: Webhook | None,
                event: Event | None) -> tuple[int | None, float | None, str | None]:
        """(status code, latency ms, error or None) of one attempt."""
        if hook is None:
            return None, None, "the endpoint was deleted"
        if event is None:
            return None, None, PAST_RETENTION
        status_code, error = None, None
        started = time.perf_counter()
        try:
            status_code, error = self._send(hook, event)
        except httpx.TimeoutException:
            error = f"timed out after {self.ctx.settings.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        return status_code, round((time.perf_counter() - started) * 1000, 1), error

    def _send(self, hook: Webhook, event: Event) -> tuple[int | None, str | None]:
        """POST the event; (status code, error or None). Reads at most the response cap."""
        if not self.ctx.settings.webhook_allow_private:
            parts = httpx.URL(hook.url)
            reason = refused_address(parts.host, parts.port or (443 if parts.scheme == "https" else 80))
            if reason:
                return None, f"refused: {reason}"
        body = body_of(event)
        at = datetime.now(timezone.utc)
        headers = {"webhook-id": event.id, "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": signature_header(hook, event.id, at, body),
                   "content-type": "application/json", "user-agent": USER_AGENT}
        cap = self.ctx.settings.webhook_max_response_bytes
        with self.http.stream("POST", hook.url, content=body.encode(), headers=headers) as response:
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= cap:
                    break  # the answer's size is the receiver's business: only its status counts
            if 200 <= response.status_code < 300:
                return response.status_code, None
            return response.status_code, f"HTTP {response.status_code}"

    def _record(self, outcomes: list[tuple[WebhookDelivery, Webhook | None, Event | None, int | None,
                                           float | None, str | None]]) -> None:
        """Every attempt of a batch, in one transaction: succeeded, pending with its next retry, or
        failed (after the last retry the endpoint is disabled)."""
        now = utcnow()
        observed = []
        with self.ctx.db.session() as s:
            for delivery, hook, event, status_code, latency_ms, error in outcomes:
                attempts = delivery.attempts + 1
                entry = {"at": now.isoformat(), "status_code": status_code, "latency_ms": latency_ms, "error": error}
                values: dict[str, Any] = {"attempts": attempts, "last_status_code": status_code,
                                          "last_latency_ms": latency_ms, "last_error": error, "lease_owner": None,
                                          "lease_expires_at": None,
                                          "history": (list(delivery.history or []) + [entry])[-HISTORY_KEPT:]}
                final = hook is None or event is None  # nothing left to send
                gave_up = False
                if error is None:
                    values.update(status="succeeded", delivered_at=now)
                elif final or attempts > len(self.schedule):
                    values.update(status="failed")
                    gave_up = not final
                else:
                    values.update(status="pending", next_attempt_at=now + timedelta(seconds=self.schedule[attempts - 1]))
                done = s.exec(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id,
                                                            WebhookDelivery.lease_owner == self.owner).values(**values))
                if done.rowcount == 1 and gave_up:
                    self._disable(s, hook, f"delivery {delivery.id} failed {attempts} times; last error: {error}")
                observed.append((event, error, gave_up))
            s.commit()
        for event, error, gave_up in observed:
            self._observe(event, error, gave_up)

    def _disable(self, s, hook: Webhook, reason: str) -> None:
        """After the last retry: the endpoint stops receiving (its owed deliveries wait for it to
        be enabled again) and the audit log says why."""
        now = utcnow()
        changed = s.exec(update(Webhook).where(Webhook.id == hook.id, Webhook.enabled.is_(True))
                         .values(enabled=False, disabled_reason=reason[:1000], disabled_at=now, updated_at=now))
        if changed.rowcount == 1:
            audit(s, None, "webhook.disabled", "webhook", hook.id, project_id=hook.project_id, reason=reason[:1000])
            log.warning("webhook %s disabled: %s", hook.id, reason)

    def _observe(self, event: Event | None, error: str | None, gave_up: bool) -> None:
        metrics = self.ctx.metrics
        if metrics is None:
            return
        metrics.webhook_attempts.labels("success" if error is None else "failure").inc()
        if gave_up:
            metrics.webhook_given_up.inc()
        if error is None and event is not None:
            metrics.webhook_lag.observe(max(0.0, (utcnow() - as_utc(event.created_at)).total_seconds()))


def owed(ctx: ServiceContext) -> tuple[int, float]:
    """(deliveries not yet delivered, age in seconds of the oldest): the lag /metrics shows."""
    from sqlalchemy import func

    with ctx.db.session() as s:
        count, oldest = s.exec(select(func.count(WebhookDelivery.id), func.min(WebhookDelivery.created_at))
                               .where(WebhookDelivery.status.in_(("pending", "delivering")))).one()
    age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
    return int(count or 0), max(0.0, age)
