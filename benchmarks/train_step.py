"""Training throughput of `googlenet train`'s step vs a plain loop with torchvision's googlenet.

    python benchmarks/train_step.py [-b 32] [--input-size 224] [--steps 5] [--device cpu|cuda]

Each contender does the same work per step: forward with both auxiliary heads, loss main + 0.3 x
(aux1 + aux2), backward, SGD with momentum. Ours runs :func:`googlenet.train.train_step` (the
exact function ``googlenet train`` calls, with its schedule, grad scaler and optional Polyak
update); the baseline is the textbook loop on ``torchvision.models.googlenet``. All contenders
run in one process, interleaved round by round, so machine noise hits them alike; the median of
the rounds is reported, as images/s and as a ratio to torchvision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

from googlenet import create_model
from googlenet.runtime.device import pick_device
from googlenet.runtime.distributed import Dist
from googlenet.train import TrainConfig, make_loop, train_step


def ours(
    preset: str, args, device: torch.device, amp: str | None = None, channels_last: bool = False
):
    cfg = TrainConfig(
        data="-",
        preset=preset,
        batch_size=args.batch_size,
        amp=amp,
        channels_last=channels_last,
        input_size=args.input_size,
    )
    torch.manual_seed(0)
    model = create_model(preset, num_classes=1000, input_size=args.input_size).to(device)
    loop = make_loop(cfg, model, Dist(device=device), steps_per_epoch=1000)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def step(x, y):
        train_step(loop, x.contiguous(memory_format=fmt), y)

    return step


def torchvision_plain(args, device: torch.device):
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)

    def step(x, y):
        out = model(x)  # GoogLeNetOutputs(logits, aux_logits2, aux_logits1) in training mode
        loss = F.cross_entropy(out.logits, y) + 0.3 * (
            F.cross_entropy(out.aux_logits1, y) + F.cross_entropy(out.aux_logits2, y)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-b", "--batch-size", type=int, default=32)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=5, help="timed rounds (after one warm-up)")
    p.add_argument("--device", default=None)
    p.add_argument("--fast", action="store_true", help="also time --amp bf16 --channels-last")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    device = pick_device(args.device)
    contenders = {
        "torchvision googlenet, plain loop": torchvision_plain(args, device),
        "googlenet train step, torchvision preset": ours("torchvision", args, device),
        "googlenet train step, paper preset": ours("paper", args, device),
    }
    if args.fast:
        contenders["googlenet train step, paper, bf16 + channels-last"] = ours(
            "paper", args, device, amp="bf16", channels_last=True
        )
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size, device=device)
    y = torch.randint(0, 1000, (args.batch_size,), device=device)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(args.steps + 1):
        for name, step in contenders.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(x, y)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_ > 0:  # round 0 warms up (allocator, oneDNN/cuDNN kernel choice)
                times[name].append(time.perf_counter() - start)
    base = args.batch_size / statistics.median(times["torchvision googlenet, plain loop"])
    results = {
        name: {
            "images_per_s": args.batch_size / statistics.median(t),
            "vs_torchvision": args.batch_size / statistics.median(t) / base,
        }
        for name, t in times.items()
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"batch {args.batch_size}, {args.input_size} px, {device}, {torch.get_num_threads()} "
        f"thread(s), median of {args.steps} steps"
    )
    for name, r in results.items():
        print(f"  {name:<52} {r['images_per_s']:8.1f} img/s  {r['vs_torchvision']:5.2f}x")


if __name__ == "__main__":
    main()
