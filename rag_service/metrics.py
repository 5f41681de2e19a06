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
        self.webhook_attempts = Counter("rag_webhook_delivery_attempts", "Webhook delivery attempts", ["outcome"],
                                        registry=r)
        self.webhook_given_up = Counter("rag_webhook_delivery_failures",
                                        "Deliveries whose last retry failed (the endpoint was disabled)", registry=r)
        self.webhook_lag = Histogram("rag_webhook_delivery_lag_seconds",
                                     "From an event's commit to its successful delivery",
                                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400),
                                     registry=r)

    def watch_deliveries(self, owed) -> None:
        """Deliveries still owed and the age of the oldest, read from SQL at scrape time."""

        class _Owed:
            def collect(self):
                pending = GaugeMetricFamily("rag_webhook_deliveries_pending", "Webhook deliveries not yet delivered")
                oldest = GaugeMetricFamily("rag_webhook_oldest_pending_seconds",
                                           "Age of the oldest delivery not yet delivered (delivery lag)")
                try:
                    count, age = owed()
                    pending.add_metric([], count)
                    oldest.add_metric([], age)
                except Exception:
                    pass  # a scrape must not fail because the database is down
                yield pending
                yield oldest

        self.registry.register(_Owed())

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
