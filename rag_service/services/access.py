"""The access gate: every entry point resolves and authorizes its index here.

One place decides, in this order, whether a request may touch an index:
1. the role the operation needs (reader / editor), `forbidden` otherwise;
2. the index, by id or by name, inside the caller's project (another project's
   index is `not_found`, exactly like one that never existed);
3. the request's `data_boundary` against the index's `privacy_tier`, with the one
   policy table in `boundaries.py` (and, for `personal`, the project's account).

A boundary refusal is written to the audit log in its own transaction and raised
as `data_boundary_violation` before the caller has written anything, so a refused
request leaves only that audit row behind. Writes use the same table as reads: a
boundary that may not read a tier may not put data into it either.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, NoReturn

from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.errors import DataBoundaryViolation, NotFound, ValidationFailed
from rag_service.models import Index, Project
from rag_service.services.auth import AuthService
from rag_service.services.boundaries import DEFAULT_BOUNDARY, POLICY, check_boundary, may_read
from rag_service.services.common import Principal, audit

# operation -> the least role that may perform it
OPERATIONS = {"read": "reader", "search": "reader", "write": "editor", "job": "editor"}
MAX_ACCOUNT_ID = 200


def nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def spellings(value: str) -> list[str]:
    """The stored spellings a lookup may match: NFC (what this build writes) and the raw
    form (rows an older build wrote without normalising)."""
    return list(dict.fromkeys((nfc(value), value)))


def boundary_value(*given: str | None) -> str | None:
    """The one data_boundary a request names in its header, query or body (None: the default).
    Two different values are refused: a gateway that pins the header must not be overridden
    by a body field the caller (or an agent) writes."""
    named = list(dict.fromkeys(v for v in given if v))
    if len(named) > 1:
        raise ValidationFailed(
            f"data_boundary is given twice with different values ({', '.join(map(repr, named))}); send one",
            field="data_boundary")
    return named[0] if named else None


@dataclass(frozen=True)
class Boundary:
    """What a request runs under: a checked data_boundary and the account it reads for."""

    name: str = DEFAULT_BOUNDARY
    account_id: str | None = None

    @classmethod
    def of(cls, *given: str | None, account_id: str | None = None) -> Boundary:
        """From the data_boundary values a request sent (header, query, body field: at most one
        distinct value) and the account it reads for."""
        if account_id is not None and (not isinstance(account_id, str) or len(account_id) > MAX_ACCOUNT_ID):
            raise ValidationFailed(f"account_id must be a string of at most {MAX_ACCOUNT_ID} characters",
                                   field="account_id")
        return cls(check_boundary(boundary_value(*given)), account_id or None)


@dataclass(frozen=True)
class Access:
    """An authorized index: what callers use instead of loading the index themselves."""

    index: Index
    boundary: Boundary
    tiers: tuple[str, ...]

    @property
    def data_boundary(self) -> str:
        return self.boundary.name


def excluded_entry(index: Index) -> dict[str, Any]:
    return {"index_id": index.id, "privacy_tier": index.privacy_tier}


class AccessService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # -- lookups ---------------------------------------------------------------
    def resolve(self, principal: Principal, ref: str | Index) -> Index:
        """An index of the caller's project by id, or else by name."""
        if isinstance(ref, Index):
            if ref.project_id != principal.project_id:
                raise NotFound("index not found", index_id=ref.id)
            return ref
        if not isinstance(ref, str) or not ref:
            raise NotFound("index not found", index_id=ref)
        with self.ctx.db.session() as s:
            index = s.get(Index, ref)
            if index is None or index.project_id != principal.project_id:
                index = s.exec(select(Index).where(Index.project_id == principal.project_id,
                                                   Index.name.in_(spellings(ref)))).first()
        if index is None:
            raise NotFound("index not found", index_id=ref)
        return index

    def _account(self, principal: Principal, boundary: Boundary, tiers: Iterable[str]) -> str | None:
        """The project's account, read only when the policy needs it (a `same_account` rule):
        under the default boundary a request costs no extra query."""
        if not any(POLICY[boundary.name].get(t) == "same_account" for t in tiers):
            return None
        with self.ctx.db.session() as s:
            project = s.get(Project, principal.project_id)
        return project.account_id if project else None

    def readable(self, boundary: Boundary, tier: str, project_account: str | None) -> bool:
        return may_read(boundary.name, tier, boundary.account_id, project_account)

    # -- decisions ---------------------------------------------------------------
    def authorize(self, principal: Principal, ref: str | Index, operation: str, boundary: Boundary) -> Access:
        """One index, named by the caller: refused (audited) if the boundary may not read it."""
        return self.authorize_many(principal, [ref], operation, boundary)[0]

    def authorize_many(self, principal: Principal, refs: Iterable[str | Index], operation: str,
                       boundary: Boundary) -> list[Access]:
        """Several indexes named by the caller: all or nothing (one audit row lists every refusal)."""
        self.require_role(principal, operation)
        indexes = list({i.id: i for i in (self.resolve(principal, r) for r in refs)}.values())
        account = self._account(principal, boundary, (i.privacy_tier for i in indexes))
        excluded = [excluded_entry(i) for i in indexes if not self.readable(boundary, i.privacy_tier, account)]
        if excluded:
            self._refuse(principal, operation, boundary, excluded, "index", excluded[0]["index_id"])
        return [Access(index=i, boundary=boundary, tiers=(i.privacy_tier,)) for i in indexes]

    def partition(self, principal: Principal, operation: str,
                  boundary: Boundary) -> tuple[list[Index], list[dict[str, Any]]]:
        """Every index of the project, split into readable ones and exclusions (for searches and
        listings over all indexes, which skip what they may not read and say so)."""
        self.require_role(principal, operation)
        with self.ctx.db.session() as s:
            indexes = s.exec(select(Index).where(Index.project_id == principal.project_id)
                             .order_by(Index.created_at, Index.id)).all()
            project = s.get(Project, principal.project_id)
        account = project.account_id if project else None
        allowed = [i for i in indexes if self.readable(boundary, i.privacy_tier, account)]
        excluded = [excluded_entry(i) for i in indexes if not self.readable(boundary, i.privacy_tier, account)]
        return allowed, excluded

    def authorize_tiers(self, principal: Principal, operation: str, boundary: Boundary, tiers: Iterable[str],
                        target_type: str, target_id: str | None = None, **detail: Any) -> None:
        """Tiers a request declares without naming an index (a job's `privacy_tier`)."""
        self.require_role(principal, operation)
        tiers = set(tiers)
        account = self._account(principal, boundary, tiers)
        refused = sorted({t for t in tiers if not self.readable(boundary, t, account)})
        if refused:
            self._refuse(principal, operation, boundary, [], target_type, target_id, privacy_tiers=refused, **detail)

    @staticmethod
    def require_role(principal: Principal, operation: str) -> None:
        AuthService.require(principal, OPERATIONS[operation])

    def _refuse(self, principal: Principal, operation: str, boundary: Boundary, excluded: list[dict[str, Any]],
                target_type: str, target_id: str | None, privacy_tiers: list[str] | None = None,
                **detail: Any) -> NoReturn:
        tiers = privacy_tiers or sorted({e["privacy_tier"] for e in excluded})
        with self.ctx.db.session() as s:
            audit(s, principal, "boundary.refused", target_type, target_id, operation=operation,
                  data_boundary=boundary.name, account_id=boundary.account_id, privacy_tiers=tiers,
                  excluded=excluded, **detail)
            s.commit()
        raise DataBoundaryViolation(
            f"data boundary {boundary.name!r} may not {'read' if operation in ('read', 'search') else 'use'} "
            f"privacy tier(s) {', '.join(tiers)}",
            data_boundary=boundary.name, privacy_tiers=tiers, indexes_excluded=excluded)
