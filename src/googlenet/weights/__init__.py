"""Weights: our safetensors files, torchvision's ``googlenet`` state dicts, Caffe's
``.caffemodel`` files (:mod:`googlenet.weights.caffe`), and :func:`load`.

Our released weights are safetensors files whose string metadata holds the whole model
configuration (preset, number of classes, class names, input size, mean and std) as JSON under
``googlenet.config``, so one file rebuilds the model that made it.

Foreign weights go through one pure function each, :func:`convert_torchvision_state_dict` (which
only renames keys) and :func:`~googlenet.weights.caffe.convert_caffe_blobs`; the result is then
loaded strictly. Pickled files are read with ``torch.load(weights_only=True)`` and nothing else:
a file that needs arbitrary Python objects to unpickle is refused, not run.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import networks
from ..errors import ConfigError, GoogLeNetError, WeightsError, first_line
from ..fileio import atomic_save
from ..hub import register_files
from ..model import GoogLeNet, GoogLeNetConfig, preset_config
from .caffe import load_caffemodel, looks_like_caffemodel

log = logging.getLogger(__name__)

CONFIG_KEY = "googlenet.config"
FORMAT_VERSION = "1"

# torchvision's names for the Inception branches -> ours (the Caffe model's).
_TORCHVISION_BRANCHES = {
    "branch1": "conv1x1",
    "branch2.0": "reduce3x3",
    "branch2.1": "conv3x3",
    "branch3.0": "reduce5x5",
    "branch3.1": "conv5x5",
    "branch4.1": "pool_proj",
}
_TORCHVISION_KEY = re.compile(r"^(inception\d[a-e])\.(branch1|branch[234]\.[01])\.(.+)$")
# Prefixes that wrappers add to state-dict keys: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


# ---------------------------------------------------------------------------------------------
# Our files
# ---------------------------------------------------------------------------------------------


def save_weights(
    model: GoogLeNet, path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> Path:
    """Write ``model``'s weights and configuration to a safetensors file, atomically.

    ``metadata`` adds string entries (an epoch, an accuracy) beside the configuration.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "googlenet.version": FORMAT_VERSION}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    meta[CONFIG_KEY] = json.dumps(model.config.to_dict())
    return atomic_save(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of one of our safetensors files."""
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(
            f"{path} is not a readable safetensors file ({first_line(err)})"
        ) from err


def _load_safetensors(path: Path) -> tuple[GoogLeNetConfig, dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise WeightsError(
            f"{path} is not a readable safetensors file ({first_line(err)})"
        ) from err
    if CONFIG_KEY not in meta:
        if _looks_like_torchvision(tensors):
            return _torchvision_config(tensors), convert_torchvision_state_dict(tensors)
        raise WeightsError(
            f"{path} has no '{CONFIG_KEY}' metadata: it was not written by googlenet; "
            "convert it with `googlenet convert-weights`"
        )
    try:
        config = GoogLeNetConfig.from_dict(config_from_json(meta[CONFIG_KEY]))
    except (ConfigError, TypeError, ValueError) as err:
        raise WeightsError(
            f"{path} has an invalid model configuration in its metadata: {err}"
        ) from err
    return config, tensors


def config_from_json(text: str) -> dict[str, Any]:
    """The ``googlenet.config`` JSON of a weights or exported file, as GoogLeNetConfig fields."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the configuration is not a JSON object")
    for key in ("mean", "std", "class_names"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return data


# ---------------------------------------------------------------------------------------------
# torchvision's googlenet
# ---------------------------------------------------------------------------------------------


def convert_torchvision_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``torchvision.models.googlenet`` state dict's keys to ours. Pure; no tensor copied.

    Only the Inception branches differ: ``inception3a.branch2.0.conv.weight`` becomes
    ``inception3a.reduce3x3.conv.weight`` and so on (the Caffe model's names). Stem, auxiliary
    heads and classifier keep their names. Wrapper prefixes (``module.``, ``_orig_mod.``) go.
    """
    out = {}
    for key, value in state_dict.items():
        key = _strip_wrappers(key)
        match = _TORCHVISION_KEY.match(key)
        if match:
            module, branch, rest = match.groups()
            if branch in _TORCHVISION_BRANCHES:
                key = f"{module}.{_TORCHVISION_BRANCHES[branch]}.{rest}"
        out[key] = value
    return out


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _looks_like_torchvision(state_dict: dict[str, Any]) -> bool:
    keys = {_strip_wrappers(k) for k in state_dict}
    return "inception3a.branch1.conv.weight" in keys and "conv1.bn.running_mean" in keys


def _torchvision_config(state_dict: dict[str, torch.Tensor]) -> GoogLeNetConfig:
    """The configuration a torchvision state dict was made with: classes and aux heads from keys."""
    keys = {_strip_wrappers(k) for k in state_dict}
    fc = next((v for k, v in state_dict.items() if _strip_wrappers(k) == "fc.weight"), None)
    if fc is None or fc.dim() != 2:
        raise WeightsError("the torchvision googlenet state dict has no 'fc.weight' classifier")
    num_classes = int(fc.shape[0])
    return preset_config(
        "torchvision",
        num_classes=num_classes,
        aux_logits="aux1.fc2.weight" in keys,
        class_names=tuple(imagenet_categories()) if num_classes == 1000 else None,
    )


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a text file, one a line in the classifier's order (blank lines skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise WeightsError(f"cannot read class names from {path}: {first_line(err)}") from err
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise WeightsError(f"{path} holds no class names (expected one a line)")
    return names


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, as torchvision ships them with its weights' metadata."""
    from torchvision.models import GoogLeNet_Weights

    return list(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])


# ---------------------------------------------------------------------------------------------
# load()
# ---------------------------------------------------------------------------------------------


def load(
    path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    aux_logits: bool | None = None,
    class_names: list[str] | None = None,
    map_location: str | torch.device = "cpu",
    **overrides: Any,
) -> GoogLeNet:
    """Build the model a weights file describes and load it, strictly.

    ``path`` is one of our safetensors files, a torchvision ``googlenet`` state dict (``.pth``,
    e.g. ``googlenet-1378be20.pth`` from the torch hub cache), one of our training checkpoints,
    or a Caffe GoogLeNet ``.caffemodel`` (BVLC's ``bvlc_googlenet.caffemodel``, into ``paper``).

    ``num_classes`` different from the file's re-initializes the classifiers (fine-tuning) and
    says so in the log. ``aux_logits=False`` drops the auxiliary heads; ``True`` on a file without
    them builds fresh ones. ``overrides`` are :class:`GoogLeNetConfig` fields that do not change
    the weights' shapes (``transform_input=False``, ``dropout=0.5``, ``input_size=...``).
    Everything a user can get wrong raises :class:`WeightsError` with a one-line message.
    """
    path = _existing(path)
    config, state_dict = _read(path)
    _check_classifier(config, state_dict, path)
    try:
        fields = config.to_dict() | overrides
        if aux_logits is not None:
            fields["aux_logits"] = aux_logits
        new_classes = num_classes is not None and num_classes != config.num_classes
        if new_classes:
            fields["num_classes"] = num_classes
            fields["class_names"] = None
        if class_names is not None:
            fields["class_names"] = tuple(class_names)
        wanted = GoogLeNetConfig.from_dict(fields)
        # Every tensor comes from the file unless a part is fresh: then no need to draw the
        # random initialization first (a third of loading VGG-16 or the naive network).
        from_file = not new_classes and not (wanted.aux_logits and not config.aux_logits)
        model = _build_empty(wanted) if from_file else networks.build(wanted)
    except ConfigError as err:
        raise WeightsError(f"cannot build the model for {path}: {err}") from err

    # Keys we expect to be missing, on purpose: fresh classifiers, fresh or dropped aux heads.
    fresh: set[str] = set()
    if new_classes:
        fresh |= {k for k in model.state_dict() if _is_classifier_key(k)}
        log.warning(
            "%s: classifier re-initialized for %d classes (the weights have %d)",
            path,
            num_classes,
            config.num_classes,
        )
    if not model.config.aux_logits:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}
    elif not config.aux_logits:
        fresh |= {k for k in model.state_dict() if k.startswith(("aux1.", "aux2."))}
        log.warning("%s has no auxiliary heads: they are freshly initialized", path)
    state_dict = {k: v for k, v in state_dict.items() if k not in fresh}
    _load_strict(model, state_dict, path, allowed_missing=fresh)
    return model.to(map_location)


def _check_classifier(config: GoogLeNetConfig, state_dict: dict, path: Path) -> None:
    """Compare the configuration's class count with the classifier's rows before building the
    model: metadata that claims a million classes must not make us allocate 12 GB first."""
    fc = state_dict.get("fc.weight")
    if isinstance(fc, torch.Tensor) and fc.dim() == 2 and fc.shape[0] != config.num_classes:
        raise WeightsError(
            f"{path}: tensor 'fc.weight' has shape {list(fc.shape)} but the model needs "
            f"{[config.num_classes, fc.shape[1]]}: the file's configuration says "
            f"{config.num_classes} classes, its classifier has {fc.shape[0]}"
        )


def _is_classifier_key(key: str) -> bool:
    return key.startswith(("fc.", "aux1.fc2.", "aux2.fc2."))


def _load_strict(
    model: GoogLeNet, state_dict: dict[str, torch.Tensor], path: Path, allowed_missing: set[str]
) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict) - allowed_missing)
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        raise WeightsError(
            f"{path} does not match the {model.config.preset!r} GoogLeNet: keys "
            + ", ".join(parts)
            + "; is it the state dict of another network?"
        )
    for key, value in state_dict.items():
        want = expected[key]
        if tuple(value.shape) != tuple(want.shape):
            raise WeightsError(
                f"{path}: tensor {key!r} has shape {list(value.shape)} but the model needs "
                f"{list(want.shape)}; the file does not match its own configuration"
            )
        if value.dtype.is_floating_point != want.dtype.is_floating_point:
            raise WeightsError(
                f"{path}: tensor {key!r} has dtype {value.dtype}, the model needs {want.dtype}"
            )
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            raise WeightsError(f"{path}: tensor {key!r} holds NaN or infinite values")
    if any(t.is_meta for t in expected.values()):  # built by _build_empty
        cast = {k: v.to(expected[k].dtype) for k, v in state_dict.items()}
        model.load_state_dict(cast, strict=True, assign=True)
    else:
        model.load_state_dict(state_dict, strict=False)


def _build_empty(config: GoogLeNetConfig) -> GoogLeNet:
    """The network for ``config`` with its tensors on the meta device (no memory, no random
    initialization): :func:`_load_strict` then assigns the file's. Built for real where a
    tensor would not come from a state dict (a non-persistent buffer)."""
    with torch.device("meta"):
        model = networks.build(config)
    named = {k for k, _ in model.named_parameters()} | {k for k, _ in model.named_buffers()}
    if not named <= set(model.state_dict()):
        return networks.build(config)
    return model


def _read(path: Path) -> tuple[GoogLeNetConfig, dict[str, torch.Tensor]]:
    """Sniff the file's format from its bytes (not its extension) and read it."""
    with open(path, "rb") as f:
        head = f.read(16)
    if _is_safetensors_header(head):
        return _load_safetensors(path)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return _from_pickled(path, _torch_load(path))
    if looks_like_caffemodel(path, head):
        return load_caffemodel(path)
    raise WeightsError(
        f"{path} is not a weights file: expected a safetensors file, a PyTorch state dict (.pth) "
        "or a Caffe .caffemodel"
    )


def _is_safetensors_header(head: bytes) -> bool:
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return 2 <= size < 100_000_000 and head[8:9] == b"{"


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"refusing to load {path}: it holds Python objects that only an unsafe unpickling "
            "could rebuild (torch.load weights_only=True refused it); "
            "use a state dict or safetensors"
        ) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise WeightsError(f"{path} is not a readable PyTorch file ({first_line(err)})") from err


def _from_pickled(path: Path, obj: Any) -> tuple[GoogLeNetConfig, dict[str, torch.Tensor]]:
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict) and "model" in obj:
        # One of our training checkpoints.
        try:
            config = GoogLeNetConfig.from_dict(config_from_json(json.dumps(obj["config"])))
        except (ConfigError, TypeError, ValueError) as err:
            raise WeightsError(f"{path}: invalid model configuration in checkpoint: {err}") from err
        return config, _tensors_only(obj["model"], path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    state_dict = _tensors_only(obj, path)
    if not _looks_like_torchvision(state_dict):
        example = next(iter(state_dict), "nothing")
        raise WeightsError(
            f"{path} is not a GoogLeNet state dict (its first key is {example!r}); expected "
            "torchvision googlenet keys such as 'inception3a.branch1.conv.weight'"
        )
    return _torchvision_config(state_dict), convert_torchvision_state_dict(state_dict)


def _tensors_only(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if not path.is_file():
        raise WeightsError(f"weights path {path} is not a file")
    return path


def convert_weights(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], **load_kwargs
) -> GoogLeNet:
    """Read any weights :func:`load` takes and write them as our safetensors file."""
    if Path(dst).suffix != ".safetensors":
        raise GoogLeNetError(f"output {dst} should end in .safetensors")
    model = load(src, **load_kwargs)
    save_weights(model, dst, metadata={"converted_from": Path(src).name})
    return model


def describe_archive(path: str | os.PathLike[str]) -> str | None:
    """``"TorchScript"`` or ``"ExportedProgram"`` for an archive :func:`export` wrote, else None.

    Such archives are not weights ``--weights`` can read; this lets the error say what they are.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any("/code/__torch__/" in n for n in names):
        return "TorchScript"
    if any(n.endswith("/archive_format") for n in names):
        return "ExportedProgram"
    return None


# The Hub methods of GoogLeNet (googlenet.hub.HubMixin) write and read model files with these.
register_files(save_weights, load)
