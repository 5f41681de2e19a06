"""The one table from stable error codes to HTTP statuses.

The server answers every domain error through it (`rag_service.api.errors`), and the Python
client maps answers back to its exception classes through it (`rag_service.client.errors`), so
the two cannot drift. It imports nothing: the client must not pull in the server's dependencies.
"""

STATUS_BY_CODE = {
    "unauthorized": 401,
    "forbidden": 403,
    "data_boundary_violation": 403,
    "not_found": 404,
    "conflict": 409,
    "version_conflict": 409,
    "payload_too_large": 413,
    "document_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "empty_document": 422,
    "corrupt_document": 422,
    "parse_timeout": 422,
    "rerank_not_configured": 422,
    "rate_limited": 429,
    "not_ready": 503,
    "rag_job_runner_not_live": 501,
    "retrieval_unavailable": 503,
}
