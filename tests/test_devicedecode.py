"""``--decode gpu``: the training images decoded with ``decode_jpeg`` a batch at a time and
augmented on the training device. Here the device is the CPU: the same code, decode_jpeg's CPU
decoder in place of nvJPEG."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from helpers.folders import make_dataset, train_args
from PIL import Image

from googlenet import ConfigError, data
from googlenet.model import IMAGENET_MEAN, IMAGENET_STD
from googlenet.train import TrainConfig

CPU = torch.device("cpu")


def _jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _photo(width: int = 200, height: int = 150) -> np.ndarray:
    """Gradients and a wave pattern: every crop of it looks different."""
    y, x = np.mgrid[0:height, 0:width]
    wave = 128 + 100 * np.sin(x / 9) * np.cos(y / 7)
    return np.stack([x * 255 / width, y * 255 / height, wave], -1).astype(np.uint8)


def _encoded(blob: bytes, name: str = "x.jpg", seed: int = 0) -> data.Encoded:
    return data.Encoded(torch.frombuffer(bytearray(blob), dtype=torch.uint8), seed, name)


def _both(blob: bytes):
    """The image as the CPU path decodes it (PIL) and as the device path does (decode_jpeg)."""
    pil = data.decode_image(io.BytesIO(blob), "x.jpg")
    (tensor,) = data.decode_batch([_encoded(blob)], CPU)
    return pil, tensor


def test_decode_jpeg_gives_the_pixels_pil_gives():
    pil, tensor = _both(_jpeg(_photo()))
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 150, 200)
    assert torch.equal(tensor, data.pil_to_uint8(pil))  # both are libjpeg-turbo, same settings


@pytest.mark.parametrize(
    "filter_, tolerance",
    [
        # torch's antialiased bilinear and bicubic follow PIL's filters: measured 0.005 (about a
        # third of a grey level in normalized units); nearest-exact samples PIL's pixel centres.
        (Image.Resampling.BILINEAR, 0.02),
        (Image.Resampling.BICUBIC, 0.02),
        (Image.Resampling.NEAREST, 1e-6),
        # "area" is adaptive average pooling, whole-pixel windows where PIL's box filter weighs
        # the fractional pixels at a window's edges: measured 0.05 for this 64 x 48 -> 32 x 32
        # shrink (2x, 1.5x). A flipped or shifted image is ~1.
        (Image.Resampling.BOX, 0.1),
    ],
)
def test_a_whole_image_resized_on_the_device_is_the_cpu_paths_resize(filter_, tolerance):
    pil, tensor = _both(_jpeg(_photo(64, 48)))
    # the box is the whole image (scale 1, the image's own aspect): whole pixels on both paths
    tf = data.TrainTransform(
        32, IMAGENET_MEAN, IMAGENET_STD, scale=(1.0, 1.0), ratio=(64 / 48, 64 / 48),
        hflip=0.0, jitter=0.0, lighting=0.0, interpolations=(filter_,),
    )  # fmt: skip
    on_cpu = tf(pil, torch.Generator().manual_seed(0))
    on_device = tf.tensor(tensor, torch.Generator().manual_seed(0))
    assert on_device.shape == on_cpu.shape == (3, 32, 32)
    assert (on_device - on_cpu).abs().mean().item() <= tolerance


def test_the_device_path_makes_the_cpu_paths_random_choices():
    """One seed, one crop, filter, flip and colour change on both paths: each device output is
    nearer the CPU output of its own seed than of any of 39 others (and by a margin: the box is
    rounded to whole pixels on the device, at most a pixel of 200 x 150)."""
    pil, tensor = _both(_jpeg(_photo()))
    tf = data.TrainTransform(32, IMAGENET_MEAN, IMAGENET_STD)
    seeds = range(40)
    cpu = torch.stack([tf(pil, torch.Generator().manual_seed(s)) for s in seeds])
    dev = torch.stack([tf.tensor(tensor, torch.Generator().manual_seed(s)) for s in seeds])
    distance = (dev[:, None] - cpu[None]).abs().mean((2, 3, 4))  # [device seed, cpu seed]
    assert torch.equal(distance.argmin(1), torch.arange(len(seeds)))
    own = distance.diagonal()
    others = (distance + torch.eye(len(seeds)) * 1e9).min(1).values
    assert (own * 2 < others).all(), (own.max(), others.min())


def test_a_batch_is_flipped_jittered_and_normalized_as_each_image_alone():
    """The batched finish (one operation per kind for the images that drew it) computes what
    each image's own sequence computes, to the bit: 32 seeds mix every order of the jitter."""
    _, tensor = _both(_jpeg(_photo()))
    tf = data.TrainTransform(32, IMAGENET_MEAN, IMAGENET_STD)
    gens = [torch.Generator().manual_seed(s) for s in range(32)]
    crops = torch.stack([tf.resize_tensor(tensor, g) for g in gens])
    draws = [tf.draw(g) for g in gens]
    assert len({tuple(op for op, _ in d.ops) for d in draws}) == 6  # every order drawn
    assert 0 < sum(d.flip for d in draws) < 32
    alone = torch.stack([tf.tensor(tensor, torch.Generator().manual_seed(s)) for s in range(32)])
    assert torch.equal(tf.finish(crops, draws), alone)


def test_a_batch_decodes_every_format_and_counts_what_no_decoder_reads(tmp_path):
    """JPEGs go to decode_jpeg together; a PNG, a CMYK JPEG and a truncated JPEG fall back to
    the CPU path's decoder one by one; what that cannot read either is a Skipped, by name."""
    photo = _photo()
    good = _jpeg(photo)
    png = io.BytesIO()
    Image.fromarray(photo).save(png, "PNG")
    cmyk = io.BytesIO()
    Image.fromarray(photo).convert("CMYK").save(cmyk, "JPEG", quality=95)
    truncated = _jpeg(np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8))
    blobs = {"a.jpg": good, "b.png": png.getvalue(), "c.jpg": cmyk.getvalue()}
    blobs["d.jpg"] = truncated[: len(truncated) * 4 // 5]
    out = data.decode_batch([_encoded(b, name) for name, b in blobs.items()], CPU)
    assert [type(x).__name__ for x in out] == ["Tensor", "Tensor", "Tensor", "Skipped"]
    assert torch.equal(out[1], torch.from_numpy(photo).permute(2, 0, 1))  # PNG: lossless
    # JPEG at quality 95 is within a few grey levels of the photo, in RGB or in CMYK
    assert (out[0].float() - out[1].float()).abs().mean() < 4
    assert (out[2].float() - out[1].float()).abs().mean() < 8
    assert out[3].path == "d.jpg" and "d.jpg: not a readable image" in out[3].reason


def test_the_workers_skip_what_is_not_an_image_before_decoding(tmp_path):
    make_dataset(tmp_path, train=2, val=1, suffix="jpg")
    (tmp_path / "train" / "a" / "notes.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG at all")
    tf = data.TrainTransform(32, IMAGENET_MEAN, IMAGENET_STD)
    images = data.ImageFolder(tmp_path / "train", data.Deferred(tf))
    batch = data.collate([images[(i, i)] for i in range(len(images))])
    assert isinstance(batch, data.EncodedBatch)
    assert len(batch.encoded) == 6 and batch.labels.tolist() == [0, 0, 1, 1, 2, 2]
    (skipped,) = batch.skipped
    assert skipped.path.endswith("notes.jpg") and "not a readable image" in skipped.reason
    (decoded,) = data.DeviceDecoder([batch], tf, CPU)
    assert decoded.images.shape == (6, 3, 32, 32) and decoded.images.device == CPU
    assert decoded.labels.tolist() == [0, 0, 1, 1, 2, 2] and decoded.skipped == batch.skipped
    # the image of seed i is the augmentation of image i with seed i, nothing else
    for i, encoded in enumerate(batch.encoded):
        pixels = data.decode_batch([encoded], CPU)[0]
        alone = tf.tensor(pixels, torch.Generator().manual_seed(encoded.seed))
        assert torch.equal(decoded.images[i], alone)


def _weights(run) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "final.safetensors"))


@pytest.mark.slow
def test_train_with_decode_device_learns_reproducibly_and_counts_bad_files(tmp_path, run_cli):
    make_dataset(tmp_path / "data", train=4, val=2, suffix="jpg")
    (tmp_path / "data" / "train" / "b" / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 64)
    args = [*train_args(str(tmp_path / "data"), str(tmp_path / "r1"), 2), "--decode", "device"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "skipped 1 unreadable image" in first.stderr
    rows = (tmp_path / "r1" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # a header and two epochs
    assert json.loads((tmp_path / "r1" / "config.json").read_text())["args"]["decode"] == "device"
    again = run_cli(*[a if a != str(tmp_path / "r1") else str(tmp_path / "r2") for a in args])
    assert again.returncode == 0, again.stderr
    a, b = _weights(tmp_path / "r1"), _weights(tmp_path / "r2")
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded per image: the same run twice
    cpu = run_cli(*train_args(str(tmp_path / "data"), str(tmp_path / "r3"), 2))
    assert cpu.returncode == 0, cpu.stderr
    c = _weights(tmp_path / "r3")
    assert any(not torch.equal(a[k], c[k]) for k in a)  # another decoder, another resampler


def test_decode_gpu_without_a_gpu_says_so_and_decodes_in_the_workers(tmp_path, run_cli):
    make_dataset(tmp_path / "data", train=2, val=1, suffix="jpg")
    args = train_args(str(tmp_path / "data"), str(tmp_path / "run"), 1, "--decode", "gpu")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "--decode gpu: training on cpu, not a GPU; decoding in the loader workers" in (
        result.stderr
    )


def test_an_unknown_decode_is_one_line(tmp_path, run_cli):
    result = run_cli(*train_args(str(tmp_path), str(tmp_path / "run"), 1, "--decode", "nvjpeg"))
    assert result.returncode == 2
    assert "--decode" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ConfigError, match="--decode must be one of cpu, gpu, device"):
        TrainConfig(data=str(tmp_path), decode="nvjpeg")  # the same through the Python API


@pytest.mark.slow
def test_train_streams_shards_undecoded_to_the_device(tmp_path, run_cli):
    make_dataset(tmp_path / "data", train=4, val=2, suffix="jpg")
    made = run_cli("shard", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "sh"))
    assert made.returncode == 0, made.stderr
    args = train_args(str(tmp_path / "sh"), str(tmp_path / "run"), 1, "--decode", "device")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "12 images" in result.stderr and "skipped" not in result.stderr
    assert len(_weights(tmp_path / "run")) > 100
