"""Every default of the recipe and of each preset, beside its source (issue 24): change one and
the test of that row fails, naming the value and where it comes from.

Sources: "paper §N" is Szegedy et al. 2014 (arXiv 1409.4842); "train_val:N", "solver:N",
"quick_solver:N" are lines of BVLC's prototxt files (/work/shared/caffe, the BVLC GoogLeNet
model); "torchvision" is ``torchvision.models.googlenet`` and its reference training script;
"project" is a choice of this project, documented in README.md ("The training recipe") or in the
module that makes it. Each value is read from the live code: a dataclass default, the command
line's parsed default, a module of a built network, a measured initialization.

Issue 22 made "paper" the literal schedule ("paper-scaled" the old one), Caffe's momentum update
the paper presets' default and added Polyak and Juditsky's arithmetic average (``--average``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

import googlenet
from googlenet.cli import build_parser
from googlenet.data import augment, crops
from googlenet.model import CAFFE_MEAN, CAFFE_STD, IMAGENET_MEAN, IMAGENET_STD, preset_config
from googlenet.runtime.training import TrainStep, paper_loss
from googlenet.train import TrainConfig
from googlenet.train import config as train_config

# ---------------------------------------------------------------------------------------------
# Training flags: TrainConfig's default and `googlenet train`'s parsed default, the same value
# ---------------------------------------------------------------------------------------------

TRAINING = [
    # name, default, source
    ("preset", "paper", "paper Table 1: the network itself"),
    ("epochs", 90, "torchvision reference script (--epochs 90)"),
    ("batch_size", 32, "train_val:19 (batch_size: 32); torchvision reference script"),
    ("lr", 0.01, "solver:7 (base_lr: 0.01)"),
    ("momentum", 0.9, "paper §6; solver:12 (momentum: 0.9)"),
    ("weight_decay", 2e-4, "solver:13 (weight_decay: 0.0002)"),
    ("schedule", "paper", "paper §6 (lr -4% every 8 epochs, as written): recipe.lr_at"),
    ("lr_step_size", None, "None: paper 8, paper-scaled 8 x epochs / 250, step 30 (torchvision)"),
    ("lr_gamma", None, "None: paper 0.96 (solver:10), step 0.1 (torchvision)"),
    ("poly_power", 0.5, "quick_solver:9 (power: 0.5)"),
    ("warmup_epochs", 0.0, "paper §6: no warm-up"),
    ("bias_lr_mult", None, "None: the preset's (CAFFE_BIAS_LR_MULT below)"),
    ("polyak", False, "project: off by default (paper §6 averages; --polyak)"),
    ("polyak_decay", 0.999, "project (recipe.polyak_average)"),
    ("average", "ema", "project: an EMA (paper §6 cites Polyak & Juditsky: --average polyak)"),
    ("polyak_start", 0.0, "project: --average polyak averages every iterate"),
    ("momentum_style", None, "None: the preset's (CAFFE_MOMENTUM below: solver's SGDSolver)"),
    ("label_smoothing", 0.0, "paper: none (label smoothing came with Inception v3)"),
    ("aux_weight", 0.3, "paper §5; train_val:933 and :1696 (loss_weight: 0.3)"),
    ("dropout", None, "None: the preset's (0.4 for the paper, below)"),
    ("aux_dropout", None, "None: the preset's (0.7, below)"),
    ("freeze_trunk", False, "project: fine-tuning trains everything by default"),
    ("scale", (0.08, 1.0), "paper §6: crops of 8% to 100% of the image area"),
    ("ratio", (3 / 4, 4 / 3), "paper §6: aspect ratio in [3/4, 4/3]"),
    ("hflip", 0.5, "train_val:11 (mirror: true: a coin flip)"),
    ("jitter", 0.4, "paper §6 photometric distortions (Howard); 0.4: fb.resnet.torch ColorJitter"),
    ("lighting", 0.1, "AlexNet's PCA lighting noise, std 0.1 (fb.resnet.torch, timm)"),
    ("mean", None, "None: the preset's, or the weights'"),
    ("std", None, "None: the preset's, or the weights'"),
    ("input_size", None, "None: 224 (paper Table 1), or the weights'"),
    ("amp", "auto", "project: bf16 where the hardware does it fast (README)"),
    ("channels_last", True, "project: the fast training step (runtime/training.py)"),
    ("merge_1x1", True, "project: the fast training step (runtime/training.py)"),
    ("compile", None, "project: off"),
    ("decode", "cpu", "project: PIL in the loader workers"),
    ("device", None, "None: CUDA, else MPS, else the CPU (runtime/device.py)"),
    ("seed", 0, "project"),
    ("threads", None, "None: OMP_NUM_THREADS or every usable CPU (docs/reproducibility.md)"),
    ("deterministic", False, "project: torch's deterministic algorithms on request"),
    ("save_every", 0, "project: a checkpoint at each epoch's end"),
    ("best_checkpoint", True, "project: best.pt beside the weights, to resume from the best"),
    ("strict", False, "project: unreadable images are skipped and reported"),
    ("print_freq", 10, "torchvision reference script (--print-freq 10)"),
    ("inception", "reduced", "paper Figure 2b: 1x1 reductions (naive: Figure 2a, the study's)"),
    ("head", "gap", "paper Table 1: global average pooling (fc: the study's alternative)"),
    ("arch", "googlenet", "paper: the network itself (vgg16/alexnet: the study's references)"),
    ("log_grad_norms", 0, "project: no per-stage gradient norms unless asked (the study)"),
]

# Where the command line spells the same default another way.
CLI_SPELLING = {"device": "auto"}

# The other constants of the recipe.
RECIPE = [
    ("PAPER_EPOCHS", train_config.PAPER_EPOCHS, 250, "solver:11, 10M iterations x 32 / 1.28M"),
    ("PAPER_STEP_EPOCHS", train_config.PAPER_STEP_EPOCHS, 8.0, "paper §6; solver:9 (320k it.)"),
    ("PAPER_GAMMA", train_config.PAPER_GAMMA, 0.96, "paper §6 (-4%); solver:10 (gamma: 0.96)"),
    (
        "CAFFE_BIAS_LR_MULT",
        train_config.CAFFE_BIAS_LR_MULT,
        {"paper": 2.0, "paper-bn": 2.0},
        "train_val:54 (lr_mult: 2 on every bias)",
    ),  # fmt: skip
    (
        "CAFFE_MOMENTUM",
        train_config.CAFFE_MOMENTUM,
        ("paper", "paper-bn"),
        "Caffe's SGDSolver (v = m v + lr g; w -= v), the solver of solver.prototxt",
    ),  # fmt: skip
    (
        "torchvision momentum",
        TrainConfig(data="d").momentum_rule("torchvision"),
        "pytorch",
        "torchvision reference script: torch.optim.SGD (v = m v + g; w -= lr v)",
    ),  # fmt: skip
    (
        "torchvision bias_lr",
        TrainConfig(data="d").bias_lr("torchvision"),
        1.0,
        "torchvision reference script: one rate",
    ),  # fmt: skip
    (
        "paper_loss aux_weight",
        inspect.signature(paper_loss).parameters["aux_weight"].default,
        0.3,
        "paper §5",
    ),  # fmt: skip
    (
        "TrainStep aux_weight",
        inspect.signature(TrainStep).parameters["aux_weight"].default,
        0.3,
        "paper §5",
    ),  # fmt: skip
    (
        "PAPER_INTERPOLATIONS",
        [i.name for i in augment.PAPER_INTERPOLATIONS],
        ["BILINEAR", "BOX", "NEAREST", "BICUBIC"],
        "paper §6: bilinear, area, nearest, cubic",
    ),  # fmt: skip
    (
        "IMAGENET_EIGVAL",
        augment.IMAGENET_EIGVAL,
        (0.2175, 0.0188, 0.0045),
        "AlexNet PCA lighting (fb.resnet.torch)",
    ),  # fmt: skip
    (
        "CAFFE_MEAN x 255",
        tuple(round(v * 255, 6) for v in CAFFE_MEAN),
        (123.0, 117.0, 104.0),
        "train_val:13-15 (mean_value 104 117 123, BGR)",
    ),  # fmt: skip
    (
        "CAFFE_STD x 255",
        tuple(round(v * 255, 6) for v in CAFFE_STD),
        (1.0, 1.0, 1.0),
        "train_val:10-16: 0-255 pixels, no division",
    ),  # fmt: skip
    ("IMAGENET_MEAN", IMAGENET_MEAN, (0.485, 0.456, 0.406), "torchvision"),
    ("IMAGENET_STD", IMAGENET_STD, (0.229, 0.224, 0.225), "torchvision"),
    # evaluation crops (paper §7)
    ("PAPER_SCALES", crops.PAPER_SCALES, (256, 288, 320, 352), "paper §7: 4 scales"),
    ("CROP_CHOICES", crops.CROP_CHOICES, (1, 10, 144), "paper §7: 1, 10, 144 crops"),
    ("resize_size(224)", crops.resize_size(224), 256, "paper §7; torchvision: shorter side 256"),
    (
        "EvalTransform crops",
        inspect.signature(crops.EvalTransform).parameters["crops"].default,
        1,
        "torchvision: one center crop",
    ),  # fmt: skip
    (
        "EvalTransform resize",
        inspect.signature(crops.EvalTransform).parameters["resize"].default,
        "shorter",
        "paper §7, torchvision ('squash' is Caffe's test protocol)",
    ),  # fmt: skip
]

# The augmentation's own defaults (what TrainTransform does when built without TrainConfig).
_AUGMENT = {f.name: f.default for f in dataclasses.fields(augment.TrainTransform)}
RECIPE += [
    (f"TrainTransform.{name}", _AUGMENT[name], value, "paper §6 (as TrainConfig's, above)")
    for name, value in [
        ("scale", (0.08, 1.0)),
        ("ratio", (3 / 4, 4 / 3)),
        ("hflip", 0.5),
        ("jitter", 0.4),
        ("lighting", 0.1),
        ("interpolations", augment.PAPER_INTERPOLATIONS),
    ]
]
RECIPE.append(
    (
        "IMAGENET_EIGVEC",
        augment.IMAGENET_EIGVEC,
        ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203)),
        "AlexNet PCA lighting (fb.resnet.torch)",
    )  # fmt: skip
)

# ---------------------------------------------------------------------------------------------
# The presets: each GoogLeNetConfig field
# ---------------------------------------------------------------------------------------------

PAPER = {
    "norm": ("lrn", "paper Table 1, §5: LRN after pool1 and conv2/3x3"),
    "bn_eps": (1e-3, "unused without BatchNorm; TF-slim's 0.001 (torchvision)"),
    "conv5x5_kernel": (5, "paper Table 1 (#5x5); train_val:325 (kernel_size: 5)"),
    "pool4_kernel": (3, "paper Table 1 (max pool 3x3/2 after 4e); train_val:1937"),
    "aux_pooling": ("paper", "paper §5: average pool 5x5/3; train_val:829-830"),
    "dropout": (0.4, "paper Table 1 (dropout 40%); train_val:2376"),
    "aux_dropout": (0.7, "paper §5 (70%); train_val:900"),
    "transform_input": (False, "paper: mean-subtracted input"),
    "init": ("caffe", "train_val:63 (xavier), :67 (bias 0.2)"),
    "input_size": (224, "paper Table 1"),
    "mean": (CAFFE_MEAN, "train_val:13-15"),
    "std": (CAFFE_STD, "train_val: no division"),
    "aux_logits": (True, "paper §5"),
    "num_classes": (1000, "ILSVRC 2014"),
    "inception": ("reduced", "paper Figure 2b: 1x1 reductions (naive: Figure 2a, for the study)"),
    "head": ("gap", "paper Table 1 (avg pool 7x7/1, then linear; fc: the study's alternative)"),
    "arch": ("googlenet", "paper: the network itself (vgg16/alexnet: the study's references)"),
}
PRESETS = {
    "paper": PAPER,
    "paper-bn": PAPER
    | {
        "norm": ("batchnorm", "Ioffe & Szegedy 2015: BatchNorm in place of LRN"),
        "bn_eps": (1e-3, "TF-slim's and torchvision's 0.001"),
        "mean": (IMAGENET_MEAN, "torchvision: BatchNorm makes the scale irrelevant"),
        "std": (IMAGENET_STD, "torchvision"),
    },
    "torchvision": PAPER
    | {
        "norm": ("batchnorm", "torchvision (TF-slim port)"),
        "bn_eps": (1e-3, "torchvision BasicConv2d (eps=0.001)"),
        "conv5x5_kernel": (3, "torchvision: 3x3 in the 5x5 branch (pytorch/vision#906)"),
        "pool4_kernel": (2, "torchvision: maxpool4 2x2/2"),
        "aux_pooling": ("adaptive", "torchvision: adaptive_avg_pool2d 4x4"),
        "dropout": (0.2, "torchvision: Dropout(p=0.2)"),
        "aux_dropout": (0.7, "torchvision InceptionAux (p=0.7)"),
        "transform_input": (True, "torchvision: True with the pretrained weights"),
        "init": ("trunc_normal", "torchvision: trunc_normal_(std=0.01)"),
        "mean": (IMAGENET_MEAN, "torchvision"),
        "std": (IMAGENET_STD, "torchvision"),
    },
}
PRESET_ROWS = [
    (preset, field, value, source)
    for preset, fields in PRESETS.items()
    for field, (value, source) in fields.items()
]


def _same(actual, expected) -> bool:
    if isinstance(expected, float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=1e-12)
    if isinstance(expected, tuple | list) and isinstance(actual, tuple | list):
        return len(actual) == len(expected) and all(
            _same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return actual == expected


def _cli_train_defaults() -> dict:
    args = vars(build_parser().parse_args(["train", "--data", "d"]))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}


@pytest.mark.parametrize(("name", "expected", "source"), TRAINING, ids=[r[0] for r in TRAINING])
def test_training_flag_default(name, expected, source):
    field = TrainConfig.__dataclass_fields__[name]
    actual = field.default
    assert _same(actual, expected), f"TrainConfig.{name} = {actual!r}, not {expected!r} ({source})"
    parsed = _cli_train_defaults()[name]
    if _same(parsed, CLI_SPELLING.get(name, expected)):
        return
    assert _same(parsed, expected), (
        f"googlenet train's --{name.replace('_', '-')} defaults to {parsed!r}, not "
        f"{expected!r} ({source})"
    )


def test_every_training_flag_is_in_the_table():
    """A new TrainConfig field must come with its default and source here."""
    stated = {r[0] for r in TRAINING}
    not_defaults = {"data", "val", "output_dir", "weights", "resume", "workers"}
    not_defaults |= {"replan_step", "replan_lr"}  # set by a resumed run, not flags
    missing = set(TrainConfig.__dataclass_fields__) - stated - not_defaults
    assert not missing, f"TrainConfig fields without a stated default: {sorted(missing)}"


@pytest.mark.parametrize(
    ("name", "actual", "expected", "source"), RECIPE, ids=[r[0] for r in RECIPE]
)
def test_recipe_constant(name, actual, expected, source):
    assert _same(actual, expected), f"{name} = {actual!r}, not {expected!r} ({source})"


@pytest.mark.parametrize(
    ("preset", "field", "expected", "source"),
    PRESET_ROWS,
    ids=[f"{p}.{f}" for p, f, _, _ in PRESET_ROWS],
)
def test_preset_default(preset, field, expected, source):
    actual = getattr(preset_config(preset), field)
    assert _same(actual, expected), (
        f"preset {preset}: {field} = {actual!r}, not {expected!r} ({source})"
    )


def test_every_preset_field_is_in_the_table():
    fields = {f.name for f in dataclasses.fields(googlenet.GoogLeNetConfig)}
    for preset, stated in PRESETS.items():
        missing = fields - set(stated) - {"preset", "class_names"}
        assert not missing, f"preset {preset}: fields without a stated default: {sorted(missing)}"
    assert set(PRESETS) == set(googlenet.PRESETS), "a preset without its rows here"


# ---------------------------------------------------------------------------------------------
# What the built network does with them: LRN, the aux heads, dropout, the initialization
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return googlenet.create_model("paper", num_classes=10)


@pytest.fixture(scope="module")
def torchvision_model():
    torch.manual_seed(0)
    return googlenet.create_model("torchvision", num_classes=10)


LRN = [  # SPEC.md §1; train_val:94-96 (local_size 5, alpha 0.0001, beta 0.75); Caffe's k is 1
    ("size", 5, "train_val:94 (local_size: 5)"),
    ("alpha", 1e-4, "train_val:95 (alpha: 0.0001)"),
    ("beta", 0.75, "train_val:96 (beta: 0.75)"),
    ("k", 1.0, "Caffe's LRN default k: 1"),
]


@pytest.mark.parametrize(("attr", "expected", "source"), LRN, ids=[r[0] for r in LRN])
def test_lrn_constant(paper_model, attr, expected, source):
    for norm in (paper_model.norm1, paper_model.norm2):
        actual = getattr(norm, attr)
        assert _same(actual, expected), f"LRN {attr} = {actual!r}, not {expected!r} ({source})"


def test_aux_head_shape_and_rates(paper_model):
    """Aux heads (paper §5; train_val:820-933): avg pool 5x5/3, 1x1 conv 128, fc 1024, dropout
    70%; main head dropout 40% (train_val:2376)."""
    aux = paper_model.aux1
    rows = {
        "aux conv channels (train_val:847, num_output 128)": (aux.conv.conv.out_channels, 128),
        "aux conv kernel (train_val:848, kernel_size 1)": (aux.conv.conv.kernel_size, (1, 1)),
        "aux fc1 in (128 x 4 x 4)": (aux.fc1.in_features, 2048),
        "aux fc1 out (train_val:878, num_output 1024)": (aux.fc1.out_features, 1024),
        "aux dropout (train_val:900, 0.7)": (aux.dropout.p, 0.7),
        "main dropout (train_val:2376, 0.4)": (paper_model.dropout.p, 0.4),
    }
    for name, (actual, expected) in rows.items():
        assert _same(actual, expected), f"{name}: {actual!r}, not {expected!r}"
    # the pooling: what reaches the 1x1 convolution is a 5x5/3 average of the 14x14 map
    seen = {}
    hook = aux.conv.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    x = torch.randn(1, 512, 14, 14)
    aux.eval()
    with torch.no_grad():
        aux(x)
    hook.remove()
    want = F.avg_pool2d(x, 5, stride=3, ceil_mode=True)
    assert seen["x"].shape == want.shape and torch.allclose(seen["x"], want), (
        "aux pooling is not avg 5x5/3 (train_val:829-830)"
    )


def test_caffe_initialization(paper_model):
    """train_val:63 (weight_filler xavier: uniform +-sqrt(3 / fan_in)), :67 (bias 0.2 on every
    convolution and hidden fully connected layer), :923 (classifier biases 0)."""
    m = paper_model
    classifiers = {id(layer.bias) for layer in m.classifiers()}
    for name, layer in m.named_modules():
        if not isinstance(layer, torch.nn.Conv2d | torch.nn.Linear):
            continue
        bias = 0.0 if id(layer.bias) in classifiers else 0.2
        assert torch.all(layer.bias == bias), f"{name}.bias is not {bias} (train_val:67/:923)"
        bound = math.sqrt(3 / layer.weight[0].numel())
        top = float(layer.weight.detach().abs().max())
        assert top <= bound * (1 + 1e-6), f"{name}: |w| {top} above xavier's {bound}"
        if layer.weight.numel() >= 10_000:  # a big layer comes close to its bound
            assert top >= 0.95 * bound, f"{name}: |w| max {top}, xavier's bound {bound}"


def test_torchvision_initialization(torchvision_model):
    """torchvision's googlenet: trunc_normal_(std=0.01) weights, BatchNorm 1/0, and the Linear
    biases PyTorch's default, uniform in +-1/sqrt(fan_in) (torchvision leaves them; issue 22)."""
    m = torchvision_model
    w = m.inception5b.conv3x3.conv.weight.detach()
    assert math.isclose(float(w.std()), 0.01, rel_tol=0.05), f"weight std {float(w.std())}"
    bias, bound = m.fc.bias.detach(), 1 / math.sqrt(m.fc.in_features)
    assert 0 < float(bias.abs().max()) <= bound, f"fc bias {bias} (PyTorch's default: +-{bound})"
    bn = m.conv1.bn
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0) and bn.eps == 1e-3


def test_caffe_rates_per_parameter(paper_model, torchvision_model):
    """train_val:50-55: weights lr_mult 1 decay_mult 1, biases lr_mult 2 decay_mult 0; the
    torchvision preset: one rate (its reference script); normalization parameters undecayed."""
    from googlenet.train import build_optimizer

    cfg = TrainConfig(data="d")
    for model, bias_mult in ((paper_model, 2.0), (torchvision_model, 1.0)):
        groups = build_optimizer(model, cfg).param_groups
        kinds = {}
        for group in groups:
            for p in group["params"]:
                kind = "weight" if p.dim() > 1 else "vector"
                kinds.setdefault(kind, set()).add((group["lr_mult"], group["weight_decay"]))
        preset = model.config.preset
        assert kinds["weight"] == {(1.0, 2e-4)}, f"{preset} weights: (lr_mult, decay) {kinds}"
        want = {(bias_mult, 0.0)} if preset == "paper" else {(1.0, 0.0)}
        assert kinds["vector"] == want, f"{preset} biases/norms: (lr_mult, decay) {kinds}"
