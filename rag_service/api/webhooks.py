"""/v1/webhooks: a project's signed lifecycle webhooks (admin role)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from rag_service.api.deps import Paging, admin, get_ctx
from rag_service.api.schemas.admin import Delivery, DeliveryPage, RotatedWebhook, WebhookPage, WebhookView, WebhookWithSecret
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.context import ServiceContext
from rag_service.services.common import Principal
from rag_service.services.webhooks import MAX_URL_LENGTH, WebhookService

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
# Admin only (403 for lower roles); a named webhook or delivery may be missing (404).
ADMIN = (*KEYED, 403)
NAMED = (*ADMIN, 404)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=MAX_URL_LENGTH)
    events: list[str] = Field(min_length=1, max_length=50)
    description: str | None = Field(None, max_length=1000)
    secret: str | None = Field(None, max_length=200)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=MAX_URL_LENGTH)
    events: list[str] | None = Field(None, min_length=1, max_length=50)
    description: str | None = Field(None, max_length=1000)
    enabled: bool | None = None


class SecretRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str | None = Field(None, max_length=200)


@router.post("", status_code=201, responses=returns(WebhookWithSecret, 201) | errors_for(*ADMIN, 413))
def create_webhook(body: WebhookCreate, p: Principal = Depends(admin),
                   ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).create(p, body.model_dump())


@router.get("", responses=returns(WebhookPage) | errors_for(*ADMIN))
def list_webhooks(paging: Paging = Depends(), p: Principal = Depends(admin),
                  ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).list(p, paging.page, paging.per_page)


@router.get("/{webhook_id}", responses=returns(WebhookView) | errors_for(*NAMED))
def get_webhook(webhook_id: str, p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).get(p, webhook_id)


@router.patch("/{webhook_id}", responses=returns(WebhookView) | errors_for(*NAMED, 413))
def update_webhook(webhook_id: str, body: WebhookPatch, p: Principal = Depends(admin),
                   ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).update(p, webhook_id, body.model_dump(exclude_unset=True))


@router.delete("/{webhook_id}", status_code=204, responses=errors_for(*NAMED))
def delete_webhook(webhook_id: str, p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)) -> Response:
    WebhookService(ctx).delete(p, webhook_id)
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret", responses=returns(RotatedWebhook) | errors_for(*NAMED, 413))
def rotate_secret(webhook_id: str, body: SecretRotate | None = None, p: Principal = Depends(admin),
                  ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).rotate_secret(p, webhook_id, body.secret if body else None)


@router.post("/{webhook_id}/test", status_code=202,
             responses=returns(Delivery, 202, "the delivery of a webhook.test event") | errors_for(*NAMED))
def send_test(webhook_id: str, p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).send_test(p, webhook_id)


@router.get("/{webhook_id}/deliveries", responses=returns(DeliveryPage) | errors_for(*NAMED))
def list_deliveries(webhook_id: str, paging: Paging = Depends(),
                    status: str | None = Query(None, pattern="^(pending|delivering|succeeded|failed)$"),
                    p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).deliveries(p, webhook_id, paging.page, paging.per_page, status)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             responses=returns(Delivery, 202, "a new delivery of the same event") | errors_for(*NAMED))
def redeliver(webhook_id: str, delivery_id: str, p: Principal = Depends(admin),
              ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return WebhookService(ctx).redeliver(p, webhook_id, delivery_id)
