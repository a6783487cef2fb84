"""The shared paths the study's arms go through, old way against new, in one process:

    python benchmarks/study_paths.py [--rounds 5]

1. Scoring a study variant (naive modules, FC head, VGG-16, AlexNet; 64 px, bf16, 150 images of
   batch 64, as ``googlenet study`` evaluates): ``googlenet eval``'s ``--backend eager`` (the
   module as it is, NCHW: what the study used before) against the default ``auto`` (now the
   ``torch`` backend for a variant: the module copied into channels_last).
2. Loading a weights file: :func:`googlenet.weights.load` (built on the meta device, the file's
   tensors assigned) against building the network with its random initialization and copying
   the file's tensors in (what ``load`` did before).

Rounds alternate the two ways; the median of each is printed with the ratio. The machine's
large-matmul rate is printed first (``googlenet bench``'s peak), to place absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from googlenet import networks
from googlenet.bench.measure import matmul_peak
from googlenet.runtime.backends import optimize_for_inference
from googlenet.weights import _read, load, save_weights

VARIANTS = {
    "naive": {"inception": "naive"},
    "fc-head": {"head": "fc"},
    "vgg16": {"arch": "vgg16"},
    "alexnet": {"arch": "alexnet"},
}


def timed(fn, rounds: int) -> float:
    fn()  # warm: kernels created, memory allocated
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    peaks = {n: matmul_peak("cpu", t) / 1e9 for n, t in (("fp32", torch.float32),
                                                           ("bf16", torch.bfloat16))}  # fmt: skip
    print("large-matmul peak (GFLOP/s): " + ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items()))
    x = torch.rand(64, 3, 64, 64)
    batches = 150 / 64
    print("\n1. scoring 150 images at 64 px, bf16, batch 64 (ms per 150 images)")
    print(f"{'network':<10}{'eager NCHW':>12}{'torch (auto)':>14}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, fields in VARIANTS.items():
            torch.manual_seed(0)
            model = networks.create("paper-bn", 10, aux_logits=False, input_size=64, **fields)
            eager = optimize_for_inference(model.eval(), "eager", amp=True)
            fast = optimize_for_inference(model, "auto", amp=True)
            a = timed(lambda run=eager: run(x), args.rounds) * batches
            b = timed(lambda run=fast: run(x), args.rounds) * batches
            print(f"{name:<10}{a * 1e3:>12.0f}{b * 1e3:>14.0f}{a / b:>7.2f}x")
        print("\n2. loading a weights file (ms)")
        print(f"{'network':<10}{'init + copy':>12}{'meta + assign':>15}{'ratio':>8}")
        for name, fields in {"baseline": {}, **VARIANTS}.items():
            torch.manual_seed(0)
            path = Path(tmp) / f"{name}.safetensors"
            save_weights(networks.create("paper-bn", 10, input_size=64, **fields), path)

            def old(path=path) -> None:
                config, state = _read(path)
                networks.build(config).load_state_dict(state)

            a = timed(old, args.rounds)
            b = timed(lambda path=path: load(path), args.rounds)
            print(f"{name:<10}{a * 1e3:>12.0f}{b * 1e3:>15.0f}{a / b:>7.2f}x")


if __name__ == "__main__":
    main()
