"""`googlenet serve`: the API answers as `googlenet predict` does, batches concurrent requests,
refuses bad uploads with one-line 4xx errors and keeps serving, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import socket
import zlib
from pathlib import Path

import httpx
import pytest
from helpers.inference import CLASSES, picture, run_main, tiny_model, write_pictures
from helpers.serve import free_port, serve_in_thread, serve_process
from PIL import Image

import googlenet
from googlenet.serve.app import Limits
from googlenet.serve.batcher import DynamicBatcher, QueueFullError
from googlenet.serve.service import ModelService


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "tiny.safetensors"
    googlenet.save_weights(tiny_model("paper", seed=1), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    return write_pictures(folder, 3) + write_pictures(folder, 2, start=3, suffix=".jpg")


@pytest.fixture(scope="module")
def service(weights) -> ModelService:
    return ModelService.from_file(weights, max_batch=32, max_pixels=1_000_000)


@pytest.fixture(scope="module")
def url(service) -> str:
    with serve_in_thread(service, Limits(max_wait_ms=20, max_body_bytes=200_000)) as base:
        yield base


def expected(capsys, weights: Path, paths: list[Path], *flags: str) -> dict[str, list]:
    """What `googlenet predict --format json` answers for each file: name -> topk."""
    code, out, err = run_main(capsys, "predict", *paths, "--weights", weights, "--format",
                              "json", "-j", "0", *flags)  # fmt: skip
    assert code == 0, err
    return {Path(p["path"]).name: p["topk"] for p in json.loads(out)}


def post(url: str, data: bytes, path: str = "/v1/predict", **kwargs) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=data, timeout=30, **kwargs)


# -- answers ------------------------------------------------------------------------------------


def test_predict_gives_the_same_answer_as_googlenet_predict(url, weights, images, capsys):
    want = expected(capsys, weights, images, "--topk", "3")
    for path in images:
        raw = post(url, path.read_bytes(), params={"topk": 3}, headers={"content-type": "image/x"})
        form = httpx.post(
            f"{url}/v1/predict?topk=3", files={"file": (path.name, path.read_bytes())}
        )
        for answer in (raw, form):
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["topk"] == want[path.name]
            assert body["model"] == "tiny" and body["ms"] > 0


def test_ten_crops_match_predict_with_ten_crops(url, weights, images, capsys):
    want = expected(capsys, weights, images[:2], "--crops", "10")
    for path in images[:2]:
        answer = post(url, path.read_bytes(), params={"crops": 10})
        assert answer.json()["topk"] == want[path.name]


def test_model_health_and_metrics(url, images):
    model = httpx.get(f"{url}/v1/model").json()
    assert model["classes"] == CLASSES and model["input_size"] == 64
    assert model["backend"] != "auto" and model["max_batch"] == 32
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").status_code == 200
    post(url, images[0].read_bytes())
    text = httpx.get(f"{url}/metrics").text
    assert 'googlenet_requests_total{code="200",path="/v1/predict"}' in text
    assert "googlenet_batch_size_bucket" in text and "googlenet_request_seconds_bucket" in text


def test_cam_is_a_png_over_the_image_for_the_class_asked(url, images, service):
    picture_bytes = images[3].read_bytes()
    answer = post(url, picture_bytes, "/v1/cam", params={"class": "cherry"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["x-class"] == "cherry" and answer.headers["x-class-index"] == "2"
    png = Image.open(io.BytesIO(answer.content))
    assert png.size == Image.open(images[3]).size
    top1 = post(url, picture_bytes, "/v1/cam")
    best = post(url, picture_bytes).json()["topk"][0]
    assert top1.headers["x-class"] == best["class"]
    unknown = post(url, picture_bytes, "/v1/cam", params={"class": "chery"})
    assert unknown.status_code == 400 and "did you mean 'cherry'" in unknown.json()["error"]


# -- hostile uploads ----------------------------------------------------------------------------


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, a few hundred bytes long."""
    img = Image.new("1", (8, 8))
    data = io.BytesIO()
    img.save(data, format="PNG")
    raw = bytearray(data.getvalue())
    ihdr = raw[8:33]  # length, "IHDR", 13 bytes of fields, CRC
    ihdr[8:12], ihdr[12:16] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    ihdr[21:25] = zlib.crc32(bytes(ihdr[4:21])).to_bytes(4, "big")
    return bytes(raw[:8] + ihdr + raw[33:])


def hostile_uploads(good: bytes) -> list[tuple[str, dict, int]]:
    """(body, request options, expected status): each a mistake or an attack."""
    return [
        ("empty", {"content": b""}, 400),
        ("truncated", {"content": good[: len(good) // 2]}, 400),
        ("not an image", {"content": b"GIF89a not really" * 10}, 400),
        ("text", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
        ("json", {"content": b"{}", "headers": {"content-type": "application/json"}}, 415),
        ("too many bytes", {"content": b"\0" * 300_000}, 413),
        ("chunked, too many bytes", {"content": iter([b"\0" * 50_000] * 6)}, 413),
        ("pixel bomb", {"content": _png_bomb(20_000, 20_000)}, 413),
        ("form without a file", {"data": {"topk": "3"}, "files": {}}, 400),
        (
            "broken form",
            {"content": b"--x\r\nnonsense", "headers": {"content-type": "multipart/form-data"}},
            400,
        ),
        ("bad crops", {"content": good, "params": {"crops": 7}}, 422),
        ("bad topk", {"content": good, "params": {"topk": 0}}, 422),
    ]


def test_hostile_uploads_get_one_line_4xx_and_the_server_keeps_serving(url, images):
    good = images[0].read_bytes()
    want = post(url, good).json()["topk"]
    count = len(hostile_uploads(good))
    for i in range(30):  # made afresh each time: the chunked body is a one-shot iterator
        name, options, status = hostile_uploads(good)[i % count]
        answer = httpx.post(f"{url}/v1/predict", timeout=30, **options)
        assert answer.status_code == status, f"{name}: {answer.status_code} {answer.text}"
        error = answer.json()["error"]
        assert error and "\n" not in error and "Traceback" not in error, name
    cam_cases = ("empty", "truncated", "not an image", "text", "too many bytes", "pixel bomb")
    for name, options, status in [c for c in hostile_uploads(good) if c[0] in cam_cases]:
        answer = httpx.post(f"{url}/v1/cam", timeout=30, **options)
        assert answer.status_code == status and answer.json()["error"], f"cam: {name}"
    assert post(url, good).json()["topk"] == want


def test_a_full_queue_answers_503_with_retry_after(service, images):
    with serve_in_thread(service, Limits(max_batch=1, max_wait_ms=300, max_queue=1)) as base:

        async def many() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                body = images[0].read_bytes()
                return await asyncio.gather(*[client.post("/v1/predict", content=body)] * 1,
                                            *[client.post("/v1/predict", content=body)
                                              for _ in range(7)])  # fmt: skip

        answers = asyncio.run(many())
    codes = sorted(a.status_code for a in answers)
    assert 200 in codes and 503 in codes, codes
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]


def test_a_slow_request_times_out_with_504(service, images):
    with serve_in_thread(service, Limits(max_wait_ms=2000, timeout_s=0.2)) as base:
        answer = post(base, images[0].read_bytes())
    assert answer.status_code == 504 and "0.2 s" in answer.json()["error"]


def test_batcher_refuses_past_its_queue_and_groups_what_waits():
    seen: list[int] = []

    def run(items: list[int]) -> list[int]:
        seen.append(len(items))
        return [i * 2 for i in items]

    async def main() -> tuple[list, list]:
        batcher = DynamicBatcher(run, max_batch=4, max_wait_ms=50, max_queue=6)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(9)),
                                       return_exceptions=True)  # fmt: skip
        await batcher.close()
        return results, seen

    results, sizes = asyncio.run(main())
    assert results[:6] == [0, 2, 4, 6, 8, 10]
    assert all(isinstance(r, QueueFullError) for r in results[6:])
    assert sizes == [4, 2]


# -- load and shutdown --------------------------------------------------------------------------


async def _clients(url: str, bodies: list[bytes], clients: int) -> list[httpx.Response]:
    """``len(bodies)`` requests from ``clients`` concurrent clients, in order."""
    queue: asyncio.Queue = asyncio.Queue()
    for i, body in enumerate(bodies):
        queue.put_nowait((i, body))
    answers: list = [None] * len(bodies)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not queue.empty():
                i, body = queue.get_nowait()
                try:
                    answers[i] = await http.post("/v1/predict", content=body)
                except httpx.TransportError as err:
                    answers[i] = err

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


@pytest.mark.slow
def test_200_requests_from_16_clients_are_all_answered_correctly(url, images, service):
    want = {p.name: service.topk(service.run_batch([_item(service, p)])[0], 5) for p in images}
    order = [images[i % len(images)] for i in range(200)]
    answers = asyncio.run(_clients(url, [p.read_bytes() for p in order], 16))
    for path, answer in zip(order, answers, strict=True):
        assert answer.status_code == 200, answer.text
        got = answer.json()["topk"]
        assert [s["index"] for s in got] == [s["index"] for s in want[path.name]]
        assert got[0]["prob"] == pytest.approx(want[path.name][0]["prob"], abs=1e-5)
    text = httpx.get(f"{url}/metrics").text
    sizes = [line for line in text.splitlines() if line.startswith("googlenet_batch_size_bucket")]
    one = next(line for line in sizes if 'le="1.0"' in line)
    count = next(
        line for line in text.splitlines() if line.startswith("googlenet_batch_size_count")
    )
    assert float(one.split()[-1]) < float(count.split()[-1]), "no batch held two requests"


def _item(service: ModelService, path: Path):
    return service.preprocess(service.decode(path.read_bytes()), 1)


@pytest.mark.slow
def test_sigterm_drains_every_accepted_request_and_exits_0(weights, images):
    body = images[1].read_bytes()
    flags = ("--max-wait-ms", "1500", "--max-batch", "64", "--backend", "eager")  # fast start
    with serve_process(weights, *flags) as (base, proc):
        want = post(base, body).json()["topk"]

        async def run() -> list:
            task = asyncio.create_task(_clients(base, [body] * 16, 16))
            async with httpx.AsyncClient(base_url=base) as http:
                for _ in range(100):  # until all 16 wait in the batcher
                    await asyncio.sleep(0.05)
                    if "googlenet_in_flight 16.0" in (await http.get("/metrics")).text:
                        break
            proc.send_signal(signal.SIGTERM)
            return await task

        answers = asyncio.run(run())
        assert proc.wait(30) == 0
    assert [a.status_code for a in answers] == [200] * 16
    # The 16 ran as one batch, the reference alone: the same classes, the probabilities equal up
    # to float summation order (about 1e-7; the answer rounds them to 6 decimals).
    for a in answers:
        got = a.json()["topk"]
        assert [g["class"] for g in got] == [w["class"] for w in want]
        assert [g["prob"] for g in got] == pytest.approx([w["prob"] for w in want], abs=2e-6)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/healthz")


# -- the command line ---------------------------------------------------------------------------


def test_serve_refuses_bad_weights_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    code, _, err = run_main(capsys, "serve", "--weights", bad, "--port", free_port())
    assert code == 2 and len(err.strip().splitlines()) == 1 and "bad.safetensors" in err
    code, _, err = run_main(capsys, "serve", "--weights", tmp_path / "missing.safetensors")
    assert code == 2 and "missing.safetensors" in err


def test_serve_refuses_a_port_in_use_before_loading_the_model(weights, capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        code, _, err = run_main(capsys, "serve", "--weights", weights, "--port", port)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err


def test_picture_helper_images_decode_like_files(service, tmp_path):
    path = tmp_path / "x.png"
    picture(7).save(path)
    assert service.decode(path.read_bytes()).tobytes() == Image.open(path).convert("RGB").tobytes()
