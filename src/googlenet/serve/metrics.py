"""Prometheus metrics (prometheus_client): requests, errors, latency, batch sizes, the queue.

Each app has its own registry, so that several servers in one process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "googlenet_requests", "HTTP requests answered", ["path", "code"], registry=r
        )
        self.errors = Counter(
            "googlenet_request_errors", "answers of 400 and above", ["path", "code"], registry=r
        )
        self.latency = Histogram(
            "googlenet_request_seconds", "time to answer", ["path"], buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "googlenet_batch_size", "images per model batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "googlenet_batch_seconds", "model time per batch", buckets=LATENCY_BUCKETS, registry=r
        )

    def track_queue(self, queued: Callable[[], int], in_flight: Callable[[], int]) -> None:
        Gauge("googlenet_queue_depth", "requests waiting for a batch", registry=self.registry
              ).set_function(queued)  # fmt: skip
        Gauge("googlenet_in_flight", "requests accepted and not yet answered",
              registry=self.registry).set_function(in_flight)  # fmt: skip

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def observe_request(self, path: str, code: int, seconds: float) -> None:
        self.requests.labels(path, str(code)).inc()
        if code >= 400:
            self.errors.labels(path, str(code)).inc()
        self.latency.labels(path).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every answer by route (not by raw path: a scan of random URLs must not create
    unbounded label values) and status, and times it."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "other")
            self.metrics.observe_request(path, status, time.perf_counter() - start)
