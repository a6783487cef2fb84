"""Does the fast training step train as well? The demo's run twice: default step against fp32.

``googlenet train`` runs bf16 autocast (where the CPU has AVX512-BF16/AMX), channels_last and
merged 1x1s by default. This trains ``googlenet demo``'s configuration (the paper preset from
scratch on scikit-learn's digits) once that way and once with ``--amp none --no-channels-last
--no-merge-1x1`` (plain fp32, NCHW), same seed, same data, same thread count, and overlays
their curves: training loss and validation top-1 (model and Polyak average) per epoch.

    python benchmarks/train_fast_vs_fp32.py [--epochs N] [--out benchmarks/results]

Writes ``train_fast_vs_fp32.png`` and ``train_fast_vs_fp32.json`` (per-epoch rows of both).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from googlenet.demo import DEMO_EPOCHS, demo_config, write_digits
from googlenet.metrics import _pyplot
from googlenet.train import train

STEPS = {
    "default (bf16 autocast, channels_last, merged 1x1s)": {},
    "fp32, NCHW, separate 1x1s": {"amp": "none", "channels_last": False, "merge_1x1": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_digits(data)
        for i, (name, changes) in enumerate(STEPS.items()):
            cfg = demo_config(data, Path(tmp) / f"run{i}", epochs=args.epochs)
            cfg = dataclasses.replace(cfg, resume=None, **changes)
            runs[name] = train(cfg)["metrics"]
            last = runs[name][-1]
            print(f"{name}: val {last['val_top1']:.2f}% polyak {last['polyak_top1']:.2f}%")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_fast_vs_fp32.json").write_text(json.dumps(runs, indent=1) + "\n")
    plot(runs, args.out / "train_fast_vs_fp32.png")


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    plt = _pyplot()
    fig, (loss, top1) = plt.subplots(1, 2, figsize=(11, 4))
    for (name, rows), color in zip(runs.items(), ("tab:blue", "tab:orange"), strict=False):
        epochs = [r["epoch"] for r in rows]
        seconds = sum(r["epoch_time_s"] for r in rows)
        label = f"{name}, {seconds:.0f} s"
        loss.plot(epochs, [r["train_loss"] for r in rows], color=color, label=label)
        top1.plot(epochs, [r["val_top1"] for r in rows], color=color, label=f"{name}: model")
        top1.plot(
            epochs, [r["polyak_top1"] for r in rows], color=color, ls="--", label="Polyak average"
        )
    loss.set(xlabel="epoch", ylabel="training loss (main + 0.3 aux)", title="loss")
    top1.set(xlabel="epoch", ylabel="val top-1 (%)", title="digits, paper preset from scratch")
    for ax in (loss, top1):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
