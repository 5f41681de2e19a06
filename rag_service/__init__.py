"""RAG indexing and retrieval service with versioned documents."""

import os

# unstructured phones home on import and the hub libraries try to download on
# first use: both must be off before any of them is imported anywhere.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")

__version__ = "0.1.0"
