"""Domain errors. They carry a stable code and detail, never an HTTP status:
one table in rag_service.api.errors maps codes to responses."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    code = "internal_error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Unauthorized(ServiceError):
    code = "unauthorized"


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class VersionConflict(ServiceError):
    code = "version_conflict"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"


class ValidationFailed(ServiceError):
    code = "validation_error"


class EmptyDocument(ServiceError):
    code = "empty_document"


class CorruptDocument(ServiceError):
    code = "corrupt_document"


class DocumentTooLarge(ServiceError):
    """A valid document that needs more than a configured limit (parser memory, extracted text)."""

    code = "document_too_large"


class ParseTimeout(ServiceError):
    """A valid document whose parsing ran past RAG_PARSE_TIMEOUT_S."""

    code = "parse_timeout"


class RerankNotConfigured(ServiceError):
    code = "rerank_not_configured"


class DataBoundaryViolation(ServiceError):
    code = "data_boundary_violation"


class RetrievalUnavailable(ServiceError):
    code = "retrieval_unavailable"


class PermanentJobError(Exception):
    """A job that cannot succeed by retrying (bad input): the runner fails it at once.
    Not a ServiceError: it ends a job, it is never an HTTP answer."""
