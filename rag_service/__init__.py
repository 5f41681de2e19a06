"""RAG indexing and retrieval service with versioned documents."""

# The offline environment defaults (no telemetry, no hub downloads) live in
# pipelines/__init__.py: importing it first sets them for the whole service.
import pipelines  # noqa: F401

__version__ = "0.1.0"
