"""What the study trains: the claims, their arms, the shared settings, and the default data.

An *arm* is one configuration of ``googlenet train``; it differs from the baseline in the
settings it names and in nothing else, and is trained once per seed. Arms are shared between the
claims that need them (the baseline's seeds serve claims 1, 3, 4 and 5), so a study trains each
configuration once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

# claim -> (arms it compares, the first being the reference), in report order.
CLAIMS: dict[str, tuple[str, ...]] = {
    "reduce": ("baseline", "naive"),
    "aux": ("paper", "paper-noaux", "baseline", "baseline-noaux"),
    "gap": ("baseline", "fc-head"),
    "crops": ("baseline",),
    # "paper" last: GoogLeNet without BatchNorm, like torchvision's VGG-16 and AlexNet
    "vgg": ("baseline", "vgg16", "alexnet", "paper"),
}
TITLES = {
    "reduce": "1x1 reductions (Figure 2a vs 2b)",
    "aux": "Auxiliary classifiers",
    "gap": "Global average pooling vs a fully connected head",
    "crops": "Crops and ensembles (Table 3)",
    "vgg": "GoogLeNet vs VGG-16 vs AlexNet (Table 2)",
}

# The default study (no --data): the demo's digits, fewer training images per class so that a
# network can overfit, 64 px so that the last map is 2x2 (claim 3 needs more than 1x1; AlexNet
# takes 63 px and up), and a budget that fits 30 minutes on a 2-core CPU (docs/study.md).
DEFAULT = dict(train_per_class=20, val_per_class=15, epochs=6, input_size=64, batch_size=16)
QUICK = dict(train_per_class=2, val_per_class=1, epochs=1, input_size=64, batch_size=20)
QUICK_SEEDS = 2
GRAD_STEPS = 400  # "the first few hundred steps" (claim 2): at most these are recorded


@dataclass(frozen=True)
class Arm:
    """One configuration: its name and the TrainConfig fields it changes from the baseline."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    what: str = ""

    def settings(self, base: dict[str, Any]) -> dict[str, Any]:
        return base | self.changes


def _alias(preset: str) -> dict[str, str]:
    """With ``--preset paper`` the baseline *is* the paper arm: one arm, not two alike."""
    return {"paper": "baseline", "paper-noaux": "baseline-noaux"} if preset == "paper" else {}


def claim_arms(claim: str, preset: str) -> list[str]:
    """The arm names a claim compares, the reference first."""
    alias = _alias(preset)
    return list(dict.fromkeys(alias.get(name, name) for name in CLAIMS[claim]))


def arms_for(claims: list[str], preset: str) -> list[Arm]:
    """The arms the claims need, each once, cheap ones first."""
    known = [
        Arm("baseline", {}, f"GoogLeNet as in the paper ({preset} preset)"),
        Arm("baseline-noaux", {"aux_weight": 0.0}, "without the auxiliary heads"),
        Arm("paper", {"preset": "paper"}, "the paper preset (LRN, no BatchNorm)"),
        Arm("paper-noaux", {"preset": "paper", "aux_weight": 0.0}, "paper preset, no aux heads"),
        Arm("fc-head", {"head": "fc"}, "flatten + FC 1024 head instead of global average pool"),
        Arm("alexnet", {"arch": "alexnet"}, "torchvision's AlexNet"),
        Arm("naive", {"inception": "naive"}, "naive Inception modules (Figure 2a)"),
        Arm("vgg16", {"arch": "vgg16"}, "torchvision's VGG-16"),
    ]
    wanted = {name for claim in claims for name in claim_arms(claim, preset)}
    return [arm for arm in known if arm.name in wanted]


def parse_claims(text: str) -> list[str]:
    """``--claims reduce,aux``: known names, in the report's order; a one-line error otherwise."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CLAIMS]
    if unknown or not names:
        raise ConfigError(
            f"--claims {text!r}: unknown claim {unknown[0]!r}; choose from {', '.join(CLAIMS)}"
            if unknown
            else f"--claims is empty; choose from {', '.join(CLAIMS)}"
        )
    return [c for c in CLAIMS if c in names]


def base_settings(
    data: str, preset: str, epochs: int, input_size: int, batch_size: int, workers: int
) -> dict[str, Any]:
    """The TrainConfig fields every arm shares (the demo's recipe, the study's budget)."""
    return {
        "data": data,
        "preset": preset,
        "input_size": input_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "workers": workers,
        # The demo's recipe at a rate BatchNorm takes; the augmentation for digits: they are
        # not mirror-symmetric (no flip), they are gray (no colour jitter or lighting noise),
        # and a crop below 64% of the area loses strokes. Every arm trains with these.
        "lr": 0.01,
        "schedule": "poly",
        "scale": (0.64, 1.0),
        "hflip": 0.0,
        "jitter": 0.0,
        "lighting": 0.0,
        "aux_weight": 0.3,
        "log_grad_norms": GRAD_STEPS,
        "resume": "auto",
        "print_freq": 50,
        # The study reads final.safetensors; best.pt would be one more full checkpoint each time
        # an arm improves (780 MB for the naive network): the arms keep the best weights only.
        "best_checkpoint": False,
    }

