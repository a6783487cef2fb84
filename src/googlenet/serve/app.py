"""The HTTP API: FastAPI routes around a :class:`~googlenet.serve.service.ModelService` and a
:class:`~googlenet.serve.batcher.DynamicBatcher`.

``POST /v1/predict`` (top-k classes, the same JSON as ``googlenet predict``), ``POST /v1/cam``
(the class activation map over the image, PNG), ``GET /v1/model``, ``/healthz``, ``/readyz``,
``/metrics`` (Prometheus) and the web page at ``/``. Every error is ``{"error": "one line"}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from googlenet.data import ImageTooLargeError
from googlenet.errors import GoogLeNetError

from .batcher import ClosedError, DynamicBatcher, QueueFullError
from .limits import BodyLimit, BodyTooLargeError
from .metrics import Metrics, MetricsMiddleware
from .service import ModelService

log = logging.getLogger("googlenet.serve")
STATIC = Path(__file__).with_name("static")
# What an upload may be sent as: an image type, raw bytes, or a form with a file field.
RAW_TYPES = ("", "application/octet-stream", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Limits:
    """The server's knobs: batching, the queue, and what one request may cost."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    timeout_s: float = 30.0
    max_body_bytes: int = 20 * 1024 * 1024


class UserError(Exception):
    """A request the server refuses: an HTTP status and one line."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    line = " ".join(str(message).split()) or "error"
    return JSONResponse({"error": line}, status_code=status, headers=headers)


async def read_upload(request: Request) -> tuple[bytes, str]:
    """The image bytes of a request (raw body, or the first file field of a multipart form)
    and a name for messages. The body size is bounded by :class:`BodyLimit`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            files = [v for v in form.values() if isinstance(v, UploadFile)]
            if not files:
                raise UserError(400, "the form has no file field; send e.g. curl -F file=@cat.jpg")
            return await files[0].read(), files[0].filename or "upload"
    if kind in RAW_TYPES or kind.startswith("image/"):
        return await request.body(), "upload"
    raise UserError(415, f"content type {kind} is not an image; send image/* bytes or a form")


def _install_errors(app: FastAPI) -> None:
    """Every failure answers ``{"error": "one line"}`` with the status that fits it."""

    @app.exception_handler(UserError)
    async def user_error(_: Request, err: UserError) -> JSONResponse:
        return _error(err.status, str(err), err.headers)

    @app.exception_handler(ImageTooLargeError)
    async def too_many_pixels(_: Request, err: ImageTooLargeError) -> JSONResponse:
        return _error(413, str(err))

    @app.exception_handler(GoogLeNetError)
    async def bad_input(_: Request, err: GoogLeNetError) -> JSONResponse:
        return _error(400, str(err))

    @app.exception_handler(BodyTooLargeError)
    async def too_large(_: Request, err: BodyTooLargeError) -> JSONResponse:
        return _error(413, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(422, f"{where}: {first.get('msg', 'invalid')}")


def create_app(service: ModelService, limits: Limits | None = None) -> FastAPI:
    """The FastAPI application serving ``service``; the batcher starts with the app's lifespan
    and drains (every accepted request answered) when the server shuts down."""
    limits = limits or Limits()
    metrics = Metrics()
    batcher: DynamicBatcher = DynamicBatcher(
        service.run_batch,
        max_batch=limits.max_batch,
        max_wait_ms=limits.max_wait_ms,
        max_queue=limits.max_queue,
        on_batch=metrics.observe_batch,
    )
    metrics.track_queue(lambda: batcher.queued, lambda: batcher.in_flight)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await run_in_threadpool(service.warm_up)
        batcher.start()
        log.info("serving %s (%s backend)", service.name, service.backend)
        yield
        log.info("draining %d request(s)", batcher.in_flight)
        await batcher.close()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, and the server must work
    # offline; the schema is at /openapi.json.
    app = FastAPI(
        title="googlenet", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.service, app.state.batcher, app.state.limits = service, batcher, limits
    _install_errors(app)
    _add_model_routes(app, service, batcher, limits)
    _add_info_routes(app, service, batcher, metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Outermost first: metrics see every answer, the body limit applies before any route.
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


async def _bounded(coro: Any, limits: Limits) -> Any:
    """``coro`` under the per-request timeout (504) and the batcher's back-pressure (503)."""
    try:
        return await asyncio.wait_for(coro, limits.timeout_s)
    except asyncio.TimeoutError:
        raise UserError(504, f"the request took longer than {limits.timeout_s:g} s") from None
    except QueueFullError as err:
        raise UserError(503, f"server busy ({err}); retry", {"Retry-After": "1"}) from None
    except ClosedError as err:
        raise UserError(503, str(err), {"Retry-After": "5"}) from None


def _add_model_routes(
    app: FastAPI, service: ModelService, batcher: DynamicBatcher, limits: Limits
) -> None:
    @app.post("/v1/predict")
    async def predict(
        request: Request,
        topk: int = Query(5, ge=1, le=1000, description="classes to return"),
        crops: int = Query(1, description="1, 10 or 144 crops, probabilities averaged"),
    ) -> dict[str, Any]:
        """Top-k classes of one image (raw body or a multipart file field)."""
        start = time.perf_counter()
        if crops not in service.transforms:
            raise UserError(422, f"crops: must be one of {', '.join(map(str, service.transforms))}")

        async def run() -> Any:
            data, name = await read_upload(request)
            item = await run_in_threadpool(_prepare, service, data, name, crops)
            return await batcher.submit(item)

        probs = await _bounded(run(), limits)
        ms = (time.perf_counter() - start) * 1000
        return {"topk": service.topk(probs, topk), "model": service.name, "ms": round(ms, 2)}

    @app.post("/v1/cam", response_class=Response)
    async def cam(
        request: Request,
        cls: str | None = Query(None, alias="class", description="class name or index; top-1"),
        alpha: float = Query(0.5, gt=0, le=1, description="opacity of the map"),
    ) -> Response:
        """The class activation map of ``class`` (default: the top-1 class) over the image."""
        if cls is not None:
            service.predictor.class_index(cls)  # an unknown class: 400 before any decoding

        async def run() -> Any:
            data, name = await read_upload(request)
            picture = await run_in_threadpool(service.decode, data, name)
            return await batcher.run_exclusive(lambda: service.cam_png(picture, cls, alpha))

        png, found = await _bounded(run(), limits)
        headers = {
            "X-Class": quote(found.name),
            "X-Class-Index": str(found.index),
            "X-Prob": f"{found.prob:.6f}",
        }
        return Response(png, media_type="image/png", headers=headers)


def _prepare(service: ModelService, data: bytes, name: str, crops: int) -> Any:
    """Decode and preprocess one upload (in a worker thread: both take milliseconds)."""
    return service.preprocess(service.decode(data, name), crops)


def _add_info_routes(
    app: FastAPI, service: ModelService, batcher: DynamicBatcher, metrics: Metrics
) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        """The model's configuration, classes, input size and backend."""
        b = batcher
        return service.describe() | {"max_batch": b.max_batch, "max_wait_ms": b.max_wait * 1e3}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process answers (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The model is loaded and warm and the server is not draining (readiness)."""
        if batcher.accepting:
            return JSONResponse({"status": "ready"})
        return _error(503, "not ready: starting or shutting down", {"Retry-After": "1"})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def _version() -> str:
    from googlenet import __version__

    return __version__
