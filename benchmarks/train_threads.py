"""The demo's training step at a given thread count: ms per step, fp32 and bf16, alternating.

    OMP_WAIT_POLICY=ACTIVE python benchmarks/train_threads.py --threads 2
    OMP_WAIT_POLICY=PASSIVE python benchmarks/train_threads.py --threads 2
    python benchmarks/train_threads.py --threads 1

The paper preset at the demo's 32 px and batch 32, through ``TrainStep`` (the step ``googlenet
train`` runs), channels_last and merged 1x1s, fp32 and bf16 autocast alternating round by round;
prints the median ms per step. Run it while another process keeps a core busy to see what
``googlenet train --threads auto`` gains there, and what the fixed default (every usable CPU, the
same weights whatever the load) costs (docs/reproducibility.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import googlenet
from googlenet.runtime.training import TrainStep, prepare_for_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("-b", "--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = {}
    for name, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        model = googlenet.create_model("paper", num_classes=10, input_size=args.size)
        run = prepare_for_training(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
        steps[name] = TrainStep(run, optimizer, amp=amp)
    x = torch.randn(args.batch_size, 3, args.size, args.size) * 50
    y = torch.randint(0, 10, (args.batch_size,))
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            times[name].append((time.perf_counter() - start) / args.steps)
    for name, values in times.items():
        median = statistics.median(values[1:] or values)  # the first round warms up
        print(f"threads {args.threads}  {name}  {1000 * median:.1f} ms/step")


if __name__ == "__main__":
    main()
