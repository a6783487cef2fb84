"""``TrainConfig``: everything ``googlenet train`` takes, checked once when it is built.

The flags are torchvision's reference script's (``--lr``, ``--wd``, ``-b``, ``-j``, ``--amp``,
``--resume``, ``--output-dir``); the defaults are the paper's recipe (see ``recipe.py``) on the
fastest training step the hardware has (``--amp auto``, channels_last, merged 1x1s).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runtime.device import AMP_CHOICES

SCHEDULES = ("paper", "paper-scaled", "poly", "cosine", "step")
# The BVLC solver ran 10M iterations of batch 32 (250 epochs) with the rate x0.96 every 320k
# iterations (8 epochs): 31 decays. "paper" is that rule as written (x0.96 every 8 epochs);
# "paper-scaled" keeps its shape over the run's own length (every 8 x epochs / 250 epochs).
PAPER_EPOCHS, PAPER_STEP_EPOCHS, PAPER_GAMMA = 250, 8.0, 0.96
# Checkpoints record the version of the schedules' names ("scheduler": {"version": ...}). Before
# version 2 "paper" was the scaled rule: such a checkpoint resumes as "paper-scaled".
SCHEDULE_VERSION = 2
# Flags that would make a resumed run another run: --resume refuses a new value (issue 17).
RESUME_REFUSED = (
    "data", "val", "preset", "weights", "input_size", "batch_size", "seed",
    "arch", "inception", "head",
)  # fmt: skip
# Not taken from the checkpoint: where this process writes and what it resumes from.
RESUME_OWN = ("resume", "output_dir", "replan_step", "replan_lr")
# Caffe's biases learn at twice the base rate (lr_mult: 2 on every conv and fc bias of BVLC's
# train_val.prototxt); torchvision's reference recipe trains everything at the base rate.
DECODE_CHOICES = ("cpu", "gpu", "device")
CAFFE_BIAS_LR_MULT = {"paper": 2.0, "paper-bn": 2.0}
# SGD's momentum, written two ways (equal while the rate is constant, different whenever it
# changes: at every step under poly or cosine, at each decay of a step schedule):
#   caffe:   v = m v + lr (g + wd w);  w -= v       (Caffe's SGDSolver, the paper's)
#   pytorch: v = m v + (g + wd w);     w -= lr v    (torch.optim.SGD, torchvision's recipe)
# Default: Caffe's for the presets trained with Caffe's recipe, PyTorch's for torchvision's.
MOMENTUM_STYLES = ("caffe", "pytorch")
CAFFE_MOMENTUM = ("paper", "paper-bn")
# --polyak's average: ema (an exponential moving average, decay --polyak-decay) or polyak (Polyak
# and Juditsky's arithmetic mean of the iterates from --polyak-start on, the paper's citation).
AVERAGES = ("ema", "polyak")


@dataclass
class TrainConfig:
    """Everything ``googlenet train`` takes; the flags are torchvision's reference script's."""

    data: str | None = None  # required, except to continue a run (--resume): then the run's
    val: str | None = None
    output_dir: str | None = None  # default runs/<data folder name>-<preset>
    preset: str = "paper"
    weights: str | None = None  # fine-tune from these (ours, or torchvision's .pth)
    # The network's variants (GoogLeNetConfig's fields of the same names; the paper's by default):
    # googlenet | vgg16 | alexnet; reduced | naive Inception modules; gap | fc head.
    arch: str = "googlenet"
    inception: str = "reduced"
    head: str = "gap"
    input_size: int | None = None  # default 224, or the input size of --weights
    epochs: int = 90
    batch_size: int = 32  # per process, as in torchvision's reference script
    workers: int = min(8, os.cpu_count() or 1)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "paper"
    lr_step_size: float | None = None  # epochs; paper: 8, paper-scaled: 8 x epochs / 250, step: 30
    lr_gamma: float | None = None  # paper: 0.96, step: 0.1
    poly_power: float = 0.5  # --schedule poly: lr x (1 - t/T) ** power (Caffe's quick_solver)
    warmup_epochs: float = 0.0
    bias_lr_mult: float | None = None  # default: Caffe's 2 for paper/paper-bn, 1 for torchvision
    polyak: bool = False
    polyak_decay: float = 0.999
    average: str = "ema"  # what --polyak keeps: ema or polyak (see AVERAGES)
    polyak_start: float = 0.0  # epochs: the average takes the iterates from here on
    momentum_style: str | None = None  # caffe or pytorch (see MOMENTUM_STYLES); None: the preset's
    label_smoothing: float = 0.0
    aux_weight: float = 0.3  # 0 drops the auxiliary heads
    dropout: float | None = None  # main head; default: the preset's (0.4 for the paper)
    aux_dropout: float | None = None
    freeze_trunk: bool = False
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    jitter: float = 0.4
    lighting: float = 0.1
    mean: tuple[float, float, float] | None = None  # default ImageNet's, or the weights'
    std: tuple[float, float, float] | None = None
    amp: str = "auto"  # auto (bf16 where the hardware does it fast, else fp32) | bf16 | fp16 | none
    channels_last: bool = True  # NHWC: oneDNN's and cuDNN's native layout
    merge_1x1: bool = True  # each Inception module's three input 1x1 convolutions as one
    compile: str | None = None  # a torch.compile backend: inductor, aot_eager, ...
    # Where training images are decoded and augmented: cpu (PIL, in the loader workers), gpu
    # (decode_jpeg batched on the training GPU; the cpu path when there is none), device (the gpu
    # path on whatever device trains, a CPU included: the same code, for tests)
    decode: str = "cpu"
    device: str | None = None  # default cuda if available
    # What decides the order of float sums, so the weights' last bits (docs/reproducibility.md):
    # recorded resolved (a count, bf16/none, cpu/cuda) in config.json and the checkpoint, and
    # reused by --resume. threads: None = OMP_NUM_THREADS or every usable CPU, whatever the
    # load; "auto" = the CPUs idle at the start (faster on a busy machine, load-dependent).
    threads: int | str | None = None
    deterministic: bool = False  # torch's deterministic algorithms; cuDNN/cuBLAS's on CUDA
    seed: int = 0
    resume: str | None = None  # a checkpoint, or "auto": <output_dir>/last.pt if it exists
    save_every: int = 0  # also write last.pt every N steps (0: at the end of each epoch only)
    # best.pt, a full checkpoint of the best epoch (to resume from it), beside best.safetensors;
    # False keeps only the weights: a checkpoint write fewer when val improves.
    best_checkpoint: bool = True
    strict: bool = False  # stop at the first unreadable image instead of skipping it
    print_freq: int = 10
    # Record the gradient norm reaching each stage (conv1, 3a, 4a, 4e, 5b) at each of the first
    # N steps, in the run's grad_norms.csv (0: not recorded).
    log_grad_norms: int = 0
    # Set when a resumed run changes --epochs: the step and rate from which a cosine or poly
    # schedule was re-planned over the new length (so the rate goes on from where it was).
    replan_step: int | None = None
    replan_lr: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.data and self.resume is None:
            problems.append("--data DIR is required (except to continue a run with --resume)")
        if self.schedule not in SCHEDULES:
            problems.append(f"--schedule must be one of {', '.join(SCHEDULES)}")
        if self.amp is None:  # the earlier spelling of fp32
            self.amp = "none"
        if self.amp not in AMP_CHOICES:
            problems.append(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")
        if self.decode not in DECODE_CHOICES:
            problems.append(
                f"--decode must be one of {', '.join(DECODE_CHOICES)}, got {self.decode!r}"
            )
        problems += self._range_problems()
        if not (0 < self.scale[0] <= self.scale[1] <= 1):
            problems.append(f"--scale needs 0 < MIN <= MAX <= 1, got {self.scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            problems.append(f"--ratio needs 0 < MIN <= MAX, got {self.ratio}")
        if self.average not in AVERAGES:
            problems.append(f"--average must be one of {', '.join(AVERAGES)}, got {self.average!r}")
        if self.momentum_style not in (None, *MOMENTUM_STYLES):
            problems.append(
                f"--momentum-style must be one of {', '.join(MOMENTUM_STYLES)}, "
                f"got {self.momentum_style!r}"
            )
        if self.freeze_trunk and self.weights is None:
            problems.append("--freeze-trunk needs --weights (a frozen random trunk learns nothing)")
        if self.weights is not None and self.resume not in (None, "auto"):
            problems.append(
                "--weights starts a run and --resume PATH continues one (its weights are in the "
                "checkpoint): pass one of them"
            )
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and not all(math.isfinite(v) for v in values):
                problems.append(f"--{name} must be finite numbers, got {values}")
        fixed = isinstance(self.threads, int) and self.threads > 0
        if not (fixed or self.threads in (None, "auto")):
            problems.append(f"--threads must be a positive number or auto, got {self.threads!r}")
        if self.deterministic and self.threads == "auto":
            problems.append(
                "--deterministic fixes the thread count: --threads auto would take it from the "
                "machine's load; give --threads N or leave it out"
            )
        problems += self._variant_problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def _range_problems(self) -> list[str]:
        """The numbers that must lie in a range, each a message if it does not."""
        checks = [
            (self.bias_lr_mult is None or 0 <= self.bias_lr_mult <= 100,
             f"--bias-lr-mult must be in [0, 100], got {self.bias_lr_mult}"),
            (0 < self.poly_power <= 10, f"--poly-power must be in (0, 10], got {self.poly_power}"),
            (0 <= self.polyak_start,
             f"--polyak-start must be 0 or more epochs, got {self.polyak_start}"),
            (0 <= self.polyak_decay < 1,
             f"--polyak-decay must be in [0, 1), got {self.polyak_decay}"),
            (0 <= self.label_smoothing < 1,
             f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}"),
            (0 <= self.hflip <= 1, f"--hflip is a probability, in [0, 1], got {self.hflip}"),
            (self.lr_gamma is None or 0 < self.lr_gamma <= 1,
             f"--lr-gamma is a decay factor, in (0, 1], got {self.lr_gamma}"),
            (0 <= self.seed < 2**63, f"--seed must be in [0, 2**63), got {self.seed}"),
            (self.save_every >= 0, f"--save-every must be 0 or more, got {self.save_every}"),
        ]  # fmt: skip
        return [message for ok, message in checks if not ok]

    def _variant_problems(self) -> list[str]:
        """--arch, --inception, --head (the networks ``googlenet study`` compares), and
        --log-grad-norms."""
        from ..model import VARIANTS

        problems = [
            f"--{name} must be one of {', '.join(allowed)}"
            for name, allowed in VARIANTS.items()
            if getattr(self, name) not in allowed
        ]
        variant = self.inception != "reduced" or self.head != "gap"
        if self.arch != "googlenet" and (self.weights or variant):
            problems.append(
                f"--arch {self.arch} trains torchvision's network from scratch: "
                "--weights, --inception and --head are GoogLeNet's"
            )
        if self.log_grad_norms < 0:
            problems.append(f"--log-grad-norms must be 0 or more, got {self.log_grad_norms}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def merge_resumed(self, saved: dict[str, Any], given: set[str]) -> TrainConfig:
        """This configuration continuing a run whose checkpoint holds the arguments ``saved``.

        Every flag not in ``given`` (those typed on the command line) takes the run's own value,
        so ``--resume auto --output-dir DIR`` alone continues it exactly. A given flag that differs
        is refused when it would make the run another one (:data:`RESUME_REFUSED`: data, preset,
        weights, input size, batch size, seed), else applied (``--epochs`` extends the run, with
        its schedule re-planned; ``-j``; the rest is announced when the run resumes).
        """
        names = {f.name for f in dataclasses.fields(self)}
        taken: dict[str, Any] = {}
        for name, old in saved.items():
            if name not in names or name in RESUME_OWN:
                continue
            old = tuple(old) if isinstance(old, list) else old
            new = getattr(self, name)
            if name not in given:
                taken[name] = old
            elif name in RESUME_REFUSED and _comparable(name, new) != _comparable(name, old):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} {new} differs from the run's {flag} {old}: the resumed run would be "
                    f"another run; leave {flag} out to continue it, or start a new run in "
                    "another --output-dir"
                )
        for name in ("replan_step", "replan_lr"):
            if saved.get(name) is not None:
                taken[name] = saved[name]
        return dataclasses.replace(self, **taken)

    def bias_lr(self, preset: str) -> float:
        """The biases' learning rate multiplier for a network of ``preset`` (the model's own, which
        for fine-tuning is the weights'): ``--bias-lr-mult``, or the preset's recipe."""
        if self.bias_lr_mult is not None:
            return self.bias_lr_mult
        return CAFFE_BIAS_LR_MULT.get(preset, 1.0)

    def momentum_rule(self, preset: str) -> str:
        """``--momentum-style``, or the preset's recipe's: Caffe's for paper and paper-bn."""
        if self.momentum_style is not None:
            return self.momentum_style
        return "caffe" if preset in CAFFE_MOMENTUM else "pytorch"


def saved_args(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The arguments a checkpoint was trained with, in today's names. A checkpoint written before
    :data:`SCHEDULE_VERSION` 2 (no version in its "scheduler" entry) meant the scaled rule by
    "paper", which is now "paper-scaled", and stepped with PyTorch's momentum (Caffe's, now the
    paper presets' default, did not exist): it resumes as it ran."""
    args = dict(ckpt.get("args") or {})
    scheduler = ckpt.get("scheduler") or {}
    if scheduler.get("version", 1) < 2:
        if args.get("schedule") == "paper":
            args["schedule"] = "paper-scaled"
        args.setdefault("momentum_style", "pytorch")
    return args


def _comparable(name: str, value: Any) -> Any:
    """Paths compare resolved (the same folder spelled two ways is the same data)."""
    if name in ("data", "val", "weights") and value is not None:
        return str(Path(value).resolve())
    return plain(value)


def tupled(config: dict[str, Any]) -> dict[str, Any]:
    """JSON's lists back to the tuples a configuration holds."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
