"""How much do Caffe's momentum update and a true Polyak average change the demo? (issue 22)

Two measurements on ``googlenet demo``'s configuration (the paper preset from scratch on
scikit-learn's digits, ``--schedule poly``, seed 0):

1. **The weights after 100 poly steps**, Caffe's update against PyTorch's from the same initial
   weights and the same batches: the distance between the two weight vectors, relative to how far
   the weights moved (||w_caffe - w_pytorch|| / ||w_caffe - w_0||), and per step the largest
   relative difference of the rates' effect. One process, the demo's batch and input size.
2. **The demo's accuracy** (validation top-1, 1 crop, of the average the demo evaluates) for each
   of momentum caffe|pytorch x average ema|polyak, one run each.

    python benchmarks/momentum_average.py [--epochs N] [--steps 100] [--out benchmarks/results]

Writes ``momentum_average.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from googlenet import data
from googlenet.demo import DEMO_EPOCHS, demo_config, write_digits
from googlenet.evaluate import evaluate_weights
from googlenet.runtime.distributed import Dist
from googlenet.train import make_loop, train, train_step
from googlenet.train.recipe import build_model

VARIANTS = {
    "caffe momentum, ema": {"momentum_style": "caffe", "average": "ema"},
    "pytorch momentum, ema": {"momentum_style": "pytorch", "average": "ema"},
    "caffe momentum, polyak (from half the run)": {"momentum_style": "caffe", "average": "polyak"},
    "pytorch momentum, polyak (from half the run)": {
        "momentum_style": "pytorch",
        "average": "polyak",
    },
}


def poly_steps(data_dir: Path, steps: int) -> dict:
    """The demo's model trained ``steps`` poly steps (over a run of ``steps`` steps) each way."""
    finals = {}
    for style in ("caffe", "pytorch"):
        cfg = demo_config(data_dir, data_dir.parent / "unused", epochs=1)
        cfg = dataclasses.replace(cfg, momentum_style=style, polyak=False, resume=None)
        classes = sorted(p.name for p in (data_dir / "train").iterdir() if p.is_dir())
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, classes, None)
        start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        loop = make_loop(cfg, model, Dist(), steps_per_epoch=steps)
        # the images as evaluated (no random augmentation): the same batches both ways
        folder = data.ImageFolder(data_dir / "train", data.EvalTransform.for_model(model.config))
        g = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(steps):
            idx = torch.randint(len(folder), (cfg.batch_size,), generator=g).tolist()
            items = [folder[i] for i in idx]
            x = torch.cat([it[0] for it in items])
            y = torch.tensor([it[1] for it in items])
            train_step(loop, x, y)
        finals[style] = torch.cat([p.detach().flatten() for p in model.parameters()])
    moved = float((finals["caffe"] - start).norm())
    apart = float((finals["caffe"] - finals["pytorch"]).norm())
    return {"steps": steps, "moved": moved, "apart": apart, "relative": apart / moved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    result: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        write_digits(data_dir)
        result["poly_steps"] = poly_steps(data_dir, args.steps)
        print(json.dumps(result["poly_steps"]))
        runs = {}
        for i, (name, changes) in enumerate({} if args.skip_demo else VARIANTS.items()):
            cfg = demo_config(data_dir, Path(tmp) / f"run{i}", epochs=args.epochs)
            start = args.epochs / 2 if changes["average"] == "polyak" else 0.0
            cfg = dataclasses.replace(cfg, resume=None, polyak_start=start, **changes)
            began = time.perf_counter()
            out = Path(train(cfg)["output_dir"])
            report = evaluate_weights(
                [out / "polyak.safetensors"], data_dir / "val", crops=1, workers=0
            )
            runs[name] = {"top1": report["top1"], "seconds": time.perf_counter() - began}
            print(f"{name}: val top-1 {report['top1']:.2f}%", flush=True)
        result["demo"] = runs
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "momentum_average.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
