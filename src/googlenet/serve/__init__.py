"""``googlenet serve``: a trained model behind an HTTP API with dynamic batching, and a web page.

Modules: :mod:`.service` (the model: decoding, preprocessing, batches, CAMs, all through the code
``googlenet predict`` uses), :mod:`.batcher` (dynamic batching on a worker thread), :mod:`.app`
(FastAPI routes, errors, the page), :mod:`.limits` and :mod:`.metrics` (body limit, Prometheus),
:mod:`.server` (uvicorn, workers, graceful shutdown). Needs the ``serve`` extra; importing this
package does not import FastAPI.
"""

from __future__ import annotations

from googlenet.errors import require

EXTRA_MODULES = ("fastapi", "uvicorn", "multipart", "prometheus_client")


def require_extra() -> None:
    """A one-line ConfigError naming the extra when a serving dependency is missing."""
    require(*EXTRA_MODULES, extra="serve")
