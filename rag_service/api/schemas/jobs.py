"""Answers of /v1/rag/jobs (services/jobs.py `job_view`, `contract`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from rag_service.api.schemas.common import Page, ResponseModel


class Job(ResponseModel):
    id: str
    job_class: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    progress: int = Field(description="0-100")
    data_boundary: str
    privacy_tier: str | None
    account_id: str | None
    index_id: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None = Field(description="set when the job succeeded (metrics, counts, gates)")
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    evidence: dict[str, Any] | None = Field(description="the boundary and tiers the job read under")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class JobPage(Page):
    items: list[Job]


class JobClass(ResponseModel):
    job_class: str
    status: str = Field(description="live, or planned (submitting one answers 501)")
    boundaries: list[str] = Field(description="data boundaries the class may run under")
    description: str


class JobContract(ResponseModel):
    """What may be submitted, and the rules submission follows."""

    job_classes: list[JobClass]
    data_boundaries: list[str]
    privacy_tiers: list[str]
    policy: dict[str, dict[str, str]] = Field(description="boundary -> tier -> yes, no or same_account")
    states: list[str]
    rules: list[str]


class JobListing(ResponseModel):
    contract: JobContract
    jobs: JobPage
