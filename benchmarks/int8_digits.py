"""int8 accuracy and speed on real images: scikit-learn's handwritten digits.

Trains the ``paper`` preset on the digits the way ``googlenet demo`` does (8 x 8 scans upscaled
to 32 x 32, dark ink on white, ImageNet mean/std, a stratified 80/20 split fixed by seed 0) unless
``--weights`` gives a trained model, then:

1. fp32 top-1 on the held-out fifth with our fast path (:func:`optimize_for_inference`);
2. :func:`quantize_int8` calibrated on training images, and its top-1 on the same held-out set;
3. images/s of both at ``--batch-size``, alternating, medians.

    python benchmarks/int8_digits.py [--weights demo.safetensors] [--epochs 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import googlenet
from googlenet.runtime.backends import openvino_min_input_size, optimize_for_inference
from googlenet.runtime.device import autocast
from googlenet.runtime.int8 import load_int8, quantize_int8
from googlenet.runtime.training import prepare_for_training, to_channels_last

SIZE = 32


def digits(size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, val images, val labels), normalized like the demo's."""
    from sklearn.datasets import load_digits

    data = load_digits()
    ink = torch.tensor(1.0 - data.images / 16.0, dtype=torch.float32)  # 1 = paper, 0 = ink
    x = F.interpolate(ink[:, None], size=(size, size), mode="bilinear", align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    mean = torch.tensor(googlenet.model.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(googlenet.model.IMAGENET_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    y = torch.tensor(data.target)
    rng = np.random.default_rng(0)
    val = np.zeros(len(y), dtype=bool)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(data.target == digit))
        val[members[: int(round(len(members) * 0.2))]] = True
    val_t = torch.from_numpy(val)
    return x[~val_t], y[~val_t], x[val_t], y[val_t]


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int = 32) -> googlenet.GoogLeNet:
    """The paper's loss (main + 0.3 aux), SGD momentum 0.9, cosine lr, our fast training path."""
    torch.manual_seed(0)
    model = googlenet.create_model("paper", num_classes=10, input_size=SIZE)
    run = prepare_for_training(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=2e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.02, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        correct = 0
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb, yb = to_channels_last(x[idx]), y[idx]
            with autocast("cpu"):
                out = run(xb, return_aux=True)
                loss = F.cross_entropy(out.logits, yb) + 0.3 * (
                    F.cross_entropy(out.aux1, yb) + F.cross_entropy(out.aux2, yb)
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            correct += (out.logits.argmax(1) == yb).sum().item()
        acc = correct / len(x)
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, top-1 {acc:.3f}", flush=True)
    return model.eval()


def top1(run, x: torch.Tensor, y: torch.Tensor) -> float:
    pairs = zip(x.split(64), y.split(64), strict=True)
    return sum((run(xb).argmax(1) == yb).sum().item() for xb, yb in pairs)


def throughput(runs: dict, x: torch.Tensor, repeats: int) -> dict[str, float]:
    for run in runs.values():
        run(x)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - t)
    return {k: len(x) / statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a trained model (else one is trained)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--calibration", type=int, default=256, help="calibration images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--save", type=Path, help="write the trained model here")
    args = parser.parse_args()

    xt, yt, xv, yv = digits()
    if args.weights:
        model = googlenet.load(args.weights, aux_logits=False).eval()
    else:
        model = train(xt, yt, args.epochs)
        if args.save:
            googlenet.save_weights(model, args.save)
    fp32 = optimize_for_inference(model)
    calibration = xt[torch.randperm(len(xt), generator=torch.Generator().manual_seed(1))]
    with tempfile.TemporaryDirectory() as tmp:
        path = quantize_int8(model, calibration[: args.calibration], Path(tmp) / "int8.onnx")
        int8 = {"onnxruntime": load_int8(path, "onnxruntime")}
        if importlib.util.find_spec("openvino") and SIZE >= openvino_min_input_size(model):
            int8["openvino"] = load_int8(path, "openvino")  # refuses 32 px: see inference
    with torch.no_grad():
        eager = top1(model, xv, yv)
    result = {
        "held_out": len(yv),
        "top1_eager_fp32": eager / len(yv),
        f"top1_{fp32.backend}_fp32": top1(fp32, xv, yv) / len(yv),
    }
    for name, run in int8.items():
        result[f"top1_{name}_int8"] = top1(run, xv, yv) / len(yv)
    x = xv[: args.batch_size]
    speeds = throughput({"fp32": fp32} | {f"int8 {k}": v for k, v in int8.items()}, x, args.repeats)
    result["images_per_s"] = speeds
    result["int8_speedup"] = {k: v / speeds["fp32"] for k, v in speeds.items() if k != "fp32"}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
