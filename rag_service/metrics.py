"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http = Histogram("rag_http_request_seconds", "HTTP request latency", ["method", "route", "status"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.ingest_chunks = Counter("rag_ingest_chunks", "Chunks written to the vector store", registry=r)
        self.ingest_bytes = Counter("rag_ingest_bytes", "Bytes of uploaded files accepted", registry=r)
        self.embed_batch = Histogram("rag_embedding_batch_seconds", "Time to embed one batch of texts", ["kind"],
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.vector_query = Histogram("rag_vector_query_seconds", "Vector store query time", ["mode"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.stale_dropped = Counter("rag_search_stale_dropped", "Hits dropped because SQL did not confirm them",
                                     registry=r)

    def watch_jobs(self, count_jobs) -> None:
        """Jobs by class and state, read from SQL at scrape time (so every worker's jobs count)."""

        class _Jobs:
            def collect(self):
                family = GaugeMetricFamily("rag_jobs", "Jobs by class and state", labels=["job_class", "state"])
                try:
                    for (job_class, state), n in count_jobs().items():
                        family.add_metric([job_class, state], n)
                except Exception:
                    pass  # a scrape must not fail because the database is down
                yield family

        self.registry.register(_Jobs())

    def render(self) -> bytes:
        return generate_latest(self.registry)
