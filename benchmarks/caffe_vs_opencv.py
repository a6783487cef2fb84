"""The paper network with Caffe weights: our fast inference path against OpenCV's Caffe runtime.

Both run BVLC GoogLeNet (``deploy.prototxt`` for OpenCV; the ``paper`` preset for us) on the same
weights and the same batch of 224 x 224 pictures, fp32 on the CPU, with the same number of
threads. Ours is :class:`googlenet.Predictor` on its default backend (``auto``: ONNX Runtime with
FastLRN on a CPU), timed through ``Predictor.logits`` (no preprocessing, as OpenCV is given a
ready blob). OpenCV runs with its defaults (its own CPU backend, Winograd 3x3 convolutions on).
The calls alternate, each after a short idle wait; the ratio of the medians is the headline,
with the median of per-round ratios (paired) and the ratio of the fastest calls (best) beside
it. Before timing, the two must agree (top-1 equal, logits within 1e-4 of their scale).

Without ``--caffemodel`` the weights are random (Caffe's initialization, written as a
``.caffemodel``); speed does not depend on the values. With BVLC's file:

    python benchmarks/caffe_vs_opencv.py [--caffemodel bvlc_googlenet.caffemodel] [-b 8]
        [--repeats 15] [--threads 2] [--backend onnxruntime]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import googlenet
from googlenet.data import normalize
from googlenet.runtime.backends import default_backend
from googlenet.weights.caffe import CAFFE_LAYERS, CAFFE_MEAN_BGR
from googlenet.weights.caffe_proto import NetParameter

DEPLOY = Path(__file__).resolve().parent.parent / "tests" / "data" / "caffe" / "deploy.prototxt"


def write_random_caffemodel(path: Path, seed: int = 0) -> Path:
    """A GoogLeNet .caffemodel from a freshly initialized ``paper`` model (conv1 back to BGR)."""
    torch.manual_seed(seed)
    state = googlenet.create_model("paper").state_dict()
    net = NetParameter(name="GoogleNet")
    for caffe_name, ours in CAFFE_LAYERS.items():
        layer = net.layer.add(name=caffe_name, type="Convolution")
        for suffix in ("weight", "bias"):
            tensor = state[f"{ours}.{suffix}"]
            if caffe_name == "conv1/7x7_s2" and suffix == "weight":
                tensor = tensor.flip(1)  # RGB -> BGR
            blob = layer.blobs.add()
            blob.shape.dim.extend(tensor.shape)
            blob.data.extend(tensor.flatten().tolist())
    path.write_bytes(net.SerializeToString())
    return path


def pictures(n: int, seed: int = 0) -> np.ndarray:
    """N x 224 x 224 x 3 uint8 RGB: blocky color fields with noise, not a constant image."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 28, 28, 3)).repeat(8, 1).repeat(8, 2)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


def timed(fn, repeats: int, settle: float) -> list[float]:
    """Wall times of ``repeats`` calls, each after ``settle`` idle seconds: the other runtime's
    worker threads spin for a while after a call and would take the cores (BENCHMARKS.md)."""
    out = []
    for _ in range(repeats):
        time.sleep(settle)
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caffemodel", type=Path, help="weights (default: random, written here)")
    parser.add_argument("-b", "--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--settle", type=float, default=0.1, help="idle seconds before a call")
    parser.add_argument("--backend", default="auto", help="our Predictor backend (auto)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.caffemodel or write_random_caffemodel(Path(tmp) / "random.caffemodel")
        model = googlenet.load(weights, aux_logits=False)
        net = cv2.dnn.readNetFromCaffe(str(DEPLOY), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    predictor = googlenet.Predictor(
        model, device="cpu", backend=args.backend, batch_size=args.batch_size
    )

    rgb = pictures(args.batch_size)
    bgr = rgb[..., ::-1].astype(np.float32) - np.array(CAFFE_MEAN_BGR, dtype=np.float32)
    blob = np.ascontiguousarray(bgr.transpose(0, 3, 1, 2))
    x = normalize(torch.from_numpy(rgb).permute(0, 3, 1, 2), model.config.mean, model.config.std)
    backend = default_backend("cpu") if args.backend == "auto" else args.backend

    def run_opencv() -> np.ndarray:
        net.setInput(blob)
        return net.forward("loss3/classifier")

    def run_ours() -> torch.Tensor:
        return predictor.logits(x)

    ours, theirs = run_ours().numpy().reshape(len(rgb), -1), run_opencv().reshape(len(rgb), -1)
    diff = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    assert diff < 1e-4 and (ours.argmax(1) == theirs.argmax(1)).all(), diff
    for _ in range(args.warmup):
        run_opencv(), run_ours()
    t_cv, t_ours = [], []
    for _ in range(args.repeats):  # alternate, so that load from other processes hits both
        t_cv += timed(run_opencv, 1, args.settle)
        t_ours += timed(run_ours, 1, args.settle)
    cv_ips = args.batch_size / statistics.median(t_cv)
    ours_ips = args.batch_size / statistics.median(t_ours)
    paired = statistics.median(c / o for c, o in zip(t_cv, t_ours, strict=True))
    best = min(t_cv) / min(t_ours)
    result = {
        "weights": str(args.caffemodel or "random"),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "backend": backend,
        "max_rel_logit_diff": diff,
        "opencv": {"version": cv2.__version__, "images_per_s": round(cv_ips, 2)},
        "googlenet": {"images_per_s": round(ours_ips, 2)},
        "ratio": round(ours_ips / cv_ips, 3),
        "ratio_paired": round(paired, 3),
        "ratio_best": round(best, 3),
    }
    print(
        f"batch {args.batch_size}, {args.threads} thread(s): OpenCV {cv2.__version__} Caffe "
        f"runtime {cv_ips:.1f} images/s, googlenet Predictor ({backend}) "
        f"{ours_ips:.1f} images/s: {ours_ips / cv_ips:.2f}x of medians, {paired:.2f}x paired, "
        f"{best:.2f}x best (logits agree to {diff:.1e})"
    )
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
