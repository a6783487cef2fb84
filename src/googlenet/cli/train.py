"""``googlenet train``: train (or fine-tune) on an image folder with the paper's recipe.

The flags are torchvision's reference script's (``--lr``, ``--wd``, ``-b``, ``-j``, ``--amp``,
``--resume``, ``--output-dir``); defaults come from :class:`googlenet.train.TrainConfig`.
"""

from __future__ import annotations

import argparse

from .args import (
    add_amp,
    add_batch_size,
    add_device,
    add_input_size,
    add_preset,
    add_workers,
    existing_file,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)


def add(sub: argparse._SubParsersAction) -> None:
    from ..train import TrainConfig

    p = sub.add_parser(
        "train",
        help="train (or fine-tune) on an image folder with the paper's recipe",
        description="Train GoogLeNet on DIR/train/<class>/<image> (validating on DIR/val) with the "
        "paper's recipe: SGD momentum 0.9, loss = main + 0.3 x (aux1 + aux2), lr x0.96 every 8 "
        "epochs, the paper's augmentation. Many GPUs: torchrun "
        "--nproc-per-node N -m googlenet train ... (-b is per process).",
    )
    _add_run(p, TrainConfig)
    _add_optimizer(p, TrainConfig)
    _add_average(p, TrainConfig)
    _add_augmentation(p, TrainConfig)
    _add_machine(p, TrainConfig)


def _add_run(p: argparse.ArgumentParser, D) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="DIR/train/<class>/... and DIR/val (required, except with --resume: the run's own)",
    )
    p.add_argument("--val", metavar="DIR", help="validation folder (default DIR/val)")
    p.add_argument(
        "--output-dir", metavar="DIR", help="where the run goes (default runs/<data name>-<preset>)"
    )
    add_preset(p)
    p.add_argument("--weights", type=existing_file, help="fine-tune from these weights")
    _add_variants(p, D)
    add_input_size(p, None, " (default 224, or the input size of --weights when fine-tuning)")
    p.add_argument("--epochs", type=positive_int, default=D.epochs, help="epochs to train")
    p.add_argument(
        "--resume",
        metavar="PATH|auto",
        help="continue from a checkpoint; auto: OUTPUT_DIR/last.pt if there",
    )
    p.add_argument(
        "--save-every",
        type=nonnegative_int,
        default=D.save_every,
        metavar="STEPS",
        help="also checkpoint (last.pt) every STEPS steps, not only at epoch ends (0: only there)",
    )
    p.add_argument(
        "--best-checkpoint",
        action=argparse.BooleanOptionalAction,
        default=D.best_checkpoint,
        help="write best.pt, a full checkpoint of the best epoch, beside best.safetensors "
        "(default: on; off saves one checkpoint write each time val top-1 improves)",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    p.add_argument(
        "--print-freq", type=positive_int, default=D.print_freq, metavar="STEPS", help="log every"
    )
    p.add_argument(
        "--log-grad-norms",
        type=nonnegative_int,
        default=D.log_grad_norms,
        metavar="STEPS",
        help="record the gradient norm reaching conv1, 3a, 4a, 4e and 5b at each of the first "
        "STEPS steps (the run's grad_norms.csv)",
    )


def _add_variants(p: argparse.ArgumentParser, D) -> None:
    """The network's variants that ``googlenet study`` compares with the paper's."""
    p.add_argument(
        "--arch",
        choices=["googlenet", "vgg16", "alexnet"],
        default=D.arch,
        help="the network: GoogLeNet, or torchvision's VGG-16 or AlexNet to compare with "
        "(trained the same way; see docs/study.md)",
    )
    p.add_argument(
        "--inception",
        choices=["reduced", "naive"],
        default=D.inception,
        help="Inception modules: the paper's with 1x1 reductions, or Figure 2a's naive ones",
    )
    p.add_argument(
        "--head",
        choices=["gap", "fc"],
        default=D.head,
        help="gap: global average pooling (the paper); fc: flatten + FC 1024 (AlexNet/VGG's way)",
    )


def _add_optimizer(p: argparse.ArgumentParser, D) -> None:
    from ..train.config import SCHEDULES

    p.add_argument("--lr", type=positive_float, default=D.lr, help="learning rate")
    p.add_argument("--momentum", type=nonnegative_float, default=D.momentum, help="SGD momentum")
    p.add_argument(
        "--wd",
        "--weight-decay",
        dest="weight_decay",
        type=nonnegative_float,
        default=D.weight_decay,
        help="weight decay",
    )
    p.add_argument(
        "--schedule",
        choices=list(SCHEDULES),
        default=D.schedule,
        help="paper: lr x0.96 every 8 epochs (the paper's rule); paper-scaled: x0.96 every 8 x "
        "epochs/250 epochs (its 31 decays fitted to the run); poly: Caffe's lr x (1 - t/T)^power "
        "(the BVLC weights' quick_solver)",
    )
    p.add_argument(
        "--poly-power", type=positive_float, default=D.poly_power, help="--schedule poly's power"
    )
    p.add_argument(
        "--bias-lr-mult",
        type=nonnegative_float,
        help="biases learn at this times the rate, without weight decay (Caffe's lr_mult: 2; "
        "default 2 for paper/paper-bn, 1 for torchvision)",
    )
    p.add_argument(
        "--lr-step-size",
        type=positive_float,
        metavar="EPOCHS",
        help="epochs between decays (paper: 8; paper-scaled: 8 x epochs / 250; step: 30)",
    )
    p.add_argument("--lr-gamma", type=positive_float, help="decay factor (paper 0.96, step 0.1)")
    p.add_argument(
        "--warmup-epochs", type=nonnegative_float, default=D.warmup_epochs, help="linear warm-up"
    )
    p.add_argument(
        "--label-smoothing", type=nonnegative_float, default=D.label_smoothing, help="0: none"
    )
    p.add_argument(
        "--aux-weight",
        type=nonnegative_float,
        default=D.aux_weight,
        help="weight of each auxiliary loss; 0 drops the auxiliary heads",
    )
    p.add_argument("--dropout", type=nonnegative_float, help="main head dropout (paper 0.4)")
    p.add_argument("--aux-dropout", type=nonnegative_float, help="aux head dropout (paper 0.7)")
    p.add_argument(
        "--freeze-trunk", action="store_true", help="with --weights: train the classifier only"
    )


def _add_average(p: argparse.ArgumentParser, D) -> None:
    """The momentum rule and the weight average: the two recipe details where Caffe's and the
    paper's differ from PyTorch's habits."""
    from ..train.config import AVERAGES, MOMENTUM_STYLES

    p.add_argument("--polyak", action="store_true", help="keep an average of the weights")
    p.add_argument(
        "--average",
        choices=list(AVERAGES),
        default=D.average,
        help="--polyak's average: ema (exponential, --polyak-decay) or polyak (Polyak and "
        "Juditsky's arithmetic mean of the iterates from --polyak-start on)",
    )
    p.add_argument(
        "--polyak-decay", type=positive_float, default=D.polyak_decay, help="EMA decay per step"
    )
    p.add_argument(
        "--polyak-start",
        type=nonnegative_float,
        default=D.polyak_start,
        metavar="EPOCHS",
        help="the average takes the weights from this epoch on (0: from the first step)",
    )
    p.add_argument(
        "--momentum-style",
        choices=list(MOMENTUM_STYLES),
        help="caffe: v = m v + lr g, w -= v (default for paper, paper-bn); pytorch: v = m v + g, "
        "w -= lr v (torchvision). They differ whenever the rate changes",
    )


def _add_augmentation(p: argparse.ArgumentParser, D) -> None:
    for flag, what in (("--scale", "random crop area fraction"), ("--ratio", "crop aspect ratio")):
        p.add_argument(
            flag,
            type=positive_float,
            nargs=2,
            default=getattr(D, flag[2:]),
            metavar=("MIN", "MAX"),
            help=what,
        )
    p.add_argument("--hflip", type=nonnegative_float, default=D.hflip, help="flip probability")
    p.add_argument(
        "--jitter",
        type=nonnegative_float,
        default=D.jitter,
        help="brightness/contrast/saturation jitter",
    )
    p.add_argument(
        "--lighting", type=nonnegative_float, default=D.lighting, help="PCA lighting noise std"
    )
    p.add_argument(
        "--mean",
        type=float,
        nargs=3,
        metavar=("R", "G", "B"),
        help="in [0, 1] units (default: the preset's; paper: Caffe's (123, 117, 104)/255)",
    )
    p.add_argument(
        "--std",
        type=positive_float,
        nargs=3,
        metavar=("R", "G", "B"),
        help="(default: the preset's; paper: 1/255, Caffe's 0-255 input)",
    )


def _add_machine(p: argparse.ArgumentParser, D) -> None:
    from ..train.config import DECODE_CHOICES

    add_batch_size(p, D.batch_size, "images per process and step")
    add_workers(p, D.workers)
    add_device(p)
    add_amp(p, "auto", training=True)
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=D.channels_last,
        help="NHWC memory format (default: on)",
    )
    p.add_argument(
        "--merge-1x1",
        action=argparse.BooleanOptionalAction,
        default=D.merge_1x1,
        help="run each Inception module's three input 1x1 convolutions as one (default: on)",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="inductor",
        metavar="BACKEND",
        help="torch.compile the model (a bare --compile: inductor)",
    )
    p.add_argument(
        "--decode",
        choices=DECODE_CHOICES,
        default=D.decode,
        help="where training images are decoded and augmented: cpu (PIL in the -j loader "
        "workers), gpu (decode_jpeg batched on the training GPU, the workers only read files; "
        "cpu when training on a CPU), device (the gpu path on any device)",
    )
    p.add_argument("--seed", type=int, default=D.seed, help="random seed (data order, init)")
    p.add_argument(
        "--threads",
        type=_threads,
        default=D.threads,
        metavar="N|auto",
        help="CPU threads of the computation, recorded and reused by --resume (default: "
        "OMP_NUM_THREADS or every usable CPU, whatever the load, so the same weights; auto: the "
        "CPUs idle now, faster on a busy machine but load-dependent)",
    )
    p.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=D.deterministic,
        help="torch's deterministic algorithms (cuDNN's and cuBLAS's on CUDA): two runs of one "
        "command give the same weights on any device; slower on CUDA (docs/reproducibility.md)",
    )


def _threads(text: str) -> int | str:
    return "auto" if text == "auto" else positive_int(text)


def given_flags(argv: list[str] | None, command: str) -> set[str] | None:
    """The destinations of ``command``'s flags typed in ``argv`` (not defaulted): a resumed run
    takes the others from its checkpoint. None when ``argv`` is unknown."""
    if argv is None:
        return None
    from . import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in subparsers.choices[command]._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command", "verbose"}


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train

    fields = {k: v for k, v in vars(args).items() if k not in ("command", "verbose", "argv")}
    # auto stays auto: the training step resolves it on its device (bf16 where the hardware does
    # it fast, CPUs with AVX512-BF16/AMX included: 1.6-2.2x there, BENCHMARKS.md)
    for key in ("scale", "ratio", "mean", "std"):
        if fields[key] is not None:
            fields[key] = tuple(fields[key])
    for key in ("data", "val", "output_dir", "weights"):
        if fields[key] is not None:
            fields[key] = str(fields[key])
    given = given_flags(getattr(args, "argv", None), "train")
    result = train(TrainConfig(**fields), given=given)
    if result:
        best = f", best val top-1 {result['best_top1']:.2f}%" if result["best_top1"] >= 0 else ""
        out = result["output_dir"]
        print(f"done: {result['epochs']} epoch(s){best}; weights and metrics in {out}")
    return 0
