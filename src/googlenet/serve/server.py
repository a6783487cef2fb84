"""Run the app under uvicorn: one process, or ``workers`` processes each with its own model.

uvicorn handles SIGTERM/SIGINT: it stops accepting connections, lets the requests in progress
finish (up to the request timeout), then runs the app's shutdown, which drains the batcher, and
exits 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from googlenet.errors import ConfigError

from .app import Limits, create_app
from .service import DEFAULT_MAX_PIXELS, ModelService

ENV_SETTINGS = "GOOGLENET_SERVE_SETTINGS"  # how worker processes get their settings


@dataclass(frozen=True)
class Settings:
    weights: str
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "auto"
    device: str = "auto"
    workers: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    access_log: bool = True
    log_level: str = "info"
    limits: Limits = field(default_factory=Limits)

    def service(self) -> ModelService:
        return ModelService.from_file(
            self.weights,
            backend=self.backend,
            device=self.device,
            max_batch=self.limits.max_batch,
            max_pixels=self.max_pixels,
        )


def _draining_server_class():
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn's server, but a SIGTERM that drained cleanly exits 0: uvicorn re-raises
        the signal after its graceful shutdown, so the process would die of it (-15)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                getattr(self, "_captured_signals", []).clear()

    return DrainingServer


def app_from_env():
    """The app of one worker process (uvicorn's factory when ``workers > 1``)."""
    data = json.loads(os.environ[ENV_SETTINGS])
    settings = Settings(**(data | {"limits": Limits(**data["limits"])}))
    return create_app(settings.service(), settings.limits)


def check_address(host: str, port: int) -> None:
    """A one-line ConfigError, before the model loads, when ``host:port`` cannot be listened on
    (uvicorn would say so after loading, in a log line, and exit 3)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


def serve(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (0 after a clean drain)."""
    import uvicorn

    check_address(settings.host, settings.port)
    options: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        log_level=settings.log_level,
        # in-flight requests get their full timeout to finish before the server gives up
        timeout_graceful_shutdown=int(settings.limits.timeout_s) + 5,
    )
    if settings.workers == 1:
        app = create_app(settings.service(), settings.limits)  # bad weights: one line, no bind
        server = _draining_server_class()(uvicorn.Config(app, **options))
        server.run()
        return 0 if server.started else 1
    ModelService.from_file(settings.weights, backend="eager", device="cpu")  # check it once
    os.environ[ENV_SETTINGS] = json.dumps(dataclasses.asdict(settings))
    uvicorn.run(
        "googlenet.serve.server:app_from_env", factory=True, workers=settings.workers, **options
    )
    return 0


__all__ = ["Settings", "app_from_env", "serve"]
