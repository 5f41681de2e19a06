"""API keys: project-scoped, stored as sha256 hashes, shown once."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from rag_service.db import Database
from rag_service.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from rag_service.models import ApiKey, Project, utcnow
from rag_service.services.common import ROLES, Principal, audit, page_of


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "rag_" + secrets.token_urlsafe(32)


class AuthService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_project(self, name: str) -> Project:
        with self.db.session() as s:
            project = s.exec(select(Project).where(Project.name == name)).first()
            if project:
                return project
            project = Project(name=name)
            s.add(project)
            try:
                s.commit()
            except IntegrityError:  # created concurrently
                s.rollback()
                return s.exec(select(Project).where(Project.name == name)).one()
            return project

    def create_key(self, project_name: str, role: str, name: str | None = None, key: str | None = None,
                   by: Principal | None = None) -> tuple[str, ApiKey]:
        if role not in ROLES:
            raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", field="role")
        project = self.ensure_project(project_name)
        key = key or new_key()
        record = ApiKey(project_id=project.id, key_hash=hash_key(key), prefix=key[:8], role=role, name=name)
        with self.db.session() as s:
            s.add(record)
            audit(s, by, "key.create", "api_key", record.id, project_id=project.id, role=role)
            s.commit()
        return key, record

    def create_project_key(self, principal: Principal, role: str, name: str | None = None) -> dict[str, Any]:
        """A new key in the caller's own project (POST /v1/keys): the secret, shown only here, and its view."""
        with self.db.session() as s:
            project = s.get(Project, principal.project_id)
        key, record = self.create_key(project.name, role, name, by=principal)
        return {"key": key, **key_view(record)}

    def ensure_bootstrap_key(self, key: str) -> None:
        """RAG_BOOTSTRAP_KEY: that exact value becomes an admin key of project `default`, idempotently."""
        with self.db.session() as s:
            if s.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first():
                return
        try:
            self.create_key("default", "admin", name="bootstrap", key=key)
        except IntegrityError:
            pass

    def has_any_key(self) -> bool:
        with self.db.session() as s:
            return s.exec(select(ApiKey.id).limit(1)).first() is not None

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthorized("missing API key: send X-API-Key or Authorization: Bearer")
        with self.db.session() as s:
            record = s.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
        if record is None or record.revoked_at is not None:
            raise Unauthorized("invalid or revoked API key")
        return Principal(project_id=record.project_id, key_id=record.id, role=record.role)

    @staticmethod
    def require(principal: Principal, role: str) -> None:
        if not principal.can(role):
            raise Forbidden(f"this action needs the {role} role; the key has {principal.role}", required_role=role)

    def list_keys(self, principal: Principal, page: int, per_page: int) -> dict:
        with self.db.session() as s:
            rows = s.exec(select(ApiKey).where(ApiKey.project_id == principal.project_id).order_by(ApiKey.created_at)).all()
        items = [key_view(r) for r in rows]
        return page_of(items[(page - 1) * per_page : page * per_page], len(items), page, per_page)

    def revoke_key(self, principal: Principal, key_id: str) -> dict:
        with self.db.session() as s:
            record = s.get(ApiKey, key_id)
            if record is None or record.project_id != principal.project_id:
                raise NotFound("api key not found")
            record.revoked_at = record.revoked_at or utcnow()
            s.add(record)
            audit(s, principal, "key.revoke", "api_key", key_id)
            s.commit()
            return key_view(record)


def key_view(r: ApiKey) -> dict:
    return {"id": r.id, "prefix": r.prefix, "role": r.role, "name": r.name,
            "created_at": r.created_at, "revoked_at": r.revoked_at}
