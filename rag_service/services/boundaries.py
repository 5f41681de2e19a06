"""The data-boundary policy: one table, served verbatim by /v1/rag/status and /v1/rag/jobs."""

from __future__ import annotations

from rag_service.errors import ValidationFailed

BOUNDARIES = ("computer", "account_supercomputer_sync", "private_supercomputer", "global_public_only")
DEFAULT_BOUNDARY = "computer"

# boundary -> tier -> "yes" | "no" | "same_account"
POLICY: dict[str, dict[str, str]] = {
    "computer": {"public": "yes", "mesh_safe": "yes", "private": "yes", "personal": "yes"},
    "account_supercomputer_sync": {"public": "yes", "mesh_safe": "yes", "private": "no", "personal": "same_account"},
    "private_supercomputer": {"public": "yes", "mesh_safe": "yes", "private": "yes", "personal": "no"},
    "global_public_only": {"public": "yes", "mesh_safe": "yes", "private": "no", "personal": "no"},
}


def check_boundary(value: str | None) -> str:
    boundary = value or DEFAULT_BOUNDARY
    if boundary not in POLICY:
        raise ValidationFailed(
            f"unknown data_boundary {boundary!r}; one of {', '.join(BOUNDARIES)}", field="data_boundary"
        )
    return boundary


def may_read(boundary: str, tier: str, request_account: str | None, project_account: str | None) -> bool:
    rule = POLICY[boundary].get(tier, "no")
    if rule == "same_account":
        return bool(request_account) and request_account == project_account
    return rule == "yes"
