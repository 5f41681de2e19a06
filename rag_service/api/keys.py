from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from rag_service.api.deps import Paging, admin, get_ctx
from rag_service.api.schemas.admin import ApiKeyPage, ApiKeyView, CreatedApiKey
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.context import ServiceContext
from rag_service.services.auth import AuthService
from rag_service.services.common import Principal

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    name: str | None = Field(None, max_length=200)


@router.get("", responses=returns(ApiKeyPage) | errors_for(*KEYED, 403))
def list_keys(paging: Paging = Depends(), p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return AuthService(ctx.db).list_keys(p, paging.page, paging.per_page)


@router.post("", status_code=201, responses=returns(CreatedApiKey, 201) | errors_for(*KEYED, 403, 413))
def create_key(body: KeyCreate, p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return AuthService(ctx.db).create_project_key(p, body.role, body.name)


@router.delete("/{key_id}", responses=returns(ApiKeyView) | errors_for(*KEYED, 403, 404))
def revoke_key(key_id: str, p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return AuthService(ctx.db).revoke_key(p, key_id)
