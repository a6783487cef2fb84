"""Caffe's ``.caffemodel`` files, read without Caffe: BVLC's ``bvlc_googlenet.caffemodel`` and the
GoogLeNets trained with its ``train_val.prototxt`` (Places205/365 ...), into the ``paper`` preset.

A ``.caffemodel`` is a binary protobuf ``NetParameter``; we parse it with the ``protobuf`` library
and the message declarations of :mod:`googlenet.weights.caffe_proto`. Both layouts are read: the
current ``layer`` field (shapes in ``BlobShape``) and the legacy V1 ``layers`` field with 4-D
``num/channels/height/width`` blobs, which is how BVLC saved its GoogLeNet in 2014.

The conversion is one pure function, :func:`convert_caffe_blobs` (Caffe layer name -> our
key, legacy shapes squeezed, conv1's input channels reordered from Caffe's BGR to our RGB); the
result is loaded strictly by :func:`googlenet.weights.load`. The configuration records Caffe's
preprocessing, so predicting, evaluating and exporting need no extra flags: 0-255 pixels minus
the mean (B 104, G 117, R 123), no division by a standard deviation. In our [0, 1] input
convention that is mean (123, 117, 104) / 255 and std 1/255 on RGB.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, WeightsError, first_line
from ..model import TABLE1, GoogLeNet, GoogLeNetConfig, preset_config

log = logging.getLogger(__name__)

# BVLC's model zoo readme (models/bvlc_googlenet/readme.md) gives the release file's sha1.
BVLC_GOOGLENET_SHA1 = "405fc5acd08a3bb12de8ee5e23a96bec22f08204"
# Caffe's mean pixel, BGR, on 0-255 (transform_param mean_value in train_val.prototxt).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
CAFFE_MEAN = tuple(v / 255.0 for v in reversed(CAFFE_MEAN_BGR))  # RGB, [0, 1] units
CAFFE_STD = (1 / 255.0,) * 3  # no division: x * 255 - mean
CAFFE_EXTRA = "pip install 'googlenet[caffe]'"

_BRANCHES = {
    "1x1": "conv1x1",
    "3x3_reduce": "reduce3x3",
    "3x3": "conv3x3",
    "5x5_reduce": "reduce5x5",
    "5x5": "conv5x5",
    "pool_proj": "pool_proj",
}


def _caffe_layers() -> dict[str, str]:
    """Caffe's layer names (train_val.prototxt) -> our module paths, in the network's order."""
    table = {
        "conv1/7x7_s2": "conv1.conv",
        "conv2/3x3_reduce": "conv2.conv",
        "conv2/3x3": "conv3.conv",
    }
    for spec in TABLE1:  # inception3a -> inception_3a
        caffe = f"inception_{spec.name.removeprefix('inception')}"
        table |= {f"{caffe}/{b}": f"{spec.name}.{ours}.conv" for b, ours in _BRANCHES.items()}
    for n in (1, 2):
        table |= {
            f"loss{n}/conv": f"aux{n}.conv.conv",
            f"loss{n}/fc": f"aux{n}.fc1",
            f"loss{n}/classifier": f"aux{n}.fc2",
        }
    table["loss3/classifier"] = "fc"
    return table


CAFFE_LAYERS: dict[str, str] = _caffe_layers()
_AUX_LAYERS = frozenset(k for k in CAFFE_LAYERS if k.startswith(("loss1/", "loss2/")))


def convert_caffe_blobs(blobs: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Caffe layer name -> ``[weights, bias]`` blobs, to our state dict. Pure; no Caffe needed.

    ``conv1/7x7_s2`` becomes ``conv1.conv.{weight,bias}``, ``inception_3a/3x3_reduce`` becomes
    ``inception3a.reduce3x3.conv.*``, ``loss1/*`` the ``aux1`` head, ``loss3/classifier`` ``fc``.
    Legacy 4-D blobs (``1 x 1 x out x in`` fully connected weights, ``1 x 1 x 1 x out`` biases)
    are squeezed to PyTorch's shapes, and conv1's input channels are reversed: Caffe's first
    layer reads BGR, ours RGB. Layers without blobs (ReLU, pooling, LRN, concat) are skipped; a
    layer with blobs that is not GoogLeNet's keeps its Caffe name, so the strict load names it.
    """
    out: dict[str, torch.Tensor] = {}
    for name, layer_blobs in blobs.items():
        prefix = CAFFE_LAYERS.get(name)
        if prefix is None:
            out |= {f"{name}.blob{i}": b for i, b in enumerate(layer_blobs)}
            continue
        ndims = (4 if prefix.endswith(".conv") else 2, 1)
        # Not strict: a layer without its bias blob yields its weight alone, and the strict load
        # then names the missing bias.
        for suffix, blob, ndim in zip(("weight", "bias"), layer_blobs, ndims, strict=False):
            while blob.dim() > ndim and blob.shape[0] == 1:
                blob = blob[0]
            if name == "conv1/7x7_s2" and suffix == "weight" and blob.dim() == 4:
                blob = blob.flip(1)  # BGR -> RGB
            out[f"{prefix}.{suffix}"] = blob
    return out


# ---------------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------------


def looks_like_caffemodel(path: Path, head: bytes) -> bool:
    """A ``.caffemodel`` by name, or bytes that start like a NetParameter (its name, V1 layers
    or layers: tags 0x0a, 0x12 or 0xa2 0x06)."""
    return (
        path.suffix.lower() == ".caffemodel"
        or head[:1] in (b"\x0a", b"\x12")
        or (head[:2] == b"\xa2\x06")
    )


def read_caffemodel(path: Path) -> tuple[str, dict[str, list[torch.Tensor]]]:
    """The network name and the blobs of every layer that has some, by layer name."""
    try:
        from google.protobuf.message import DecodeError

        from .caffe_proto import NetParameter
    except ImportError as err:
        raise WeightsError(
            f"reading the Caffe model {path} needs the protobuf package: {CAFFE_EXTRA}"
        ) from err
    data = path.read_bytes()
    if not data:
        raise WeightsError(f"{path} is empty: a .caffemodel holds a Caffe NetParameter")
    if data.lstrip()[:6] in (b"name: ", b"layer ", b"layers", b"input:"):
        raise WeightsError(
            f"{path} is a text .prototxt (the network's description), not its weights: "
            "pass the binary .caffemodel"
        )
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        net = NetParameter.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise WeightsError(
            f"{path} is not a readable .caffemodel (protobuf: {first_line(err)}); "
            "is it truncated, or no .caffemodel at all? Compare its size and sha1 with the source's"
        ) from err
    if net.layer and net.layers:
        raise WeightsError(f"{path} has both current and V1 layers; Caffe itself refuses that")
    layers = net.layer or net.layers
    if not layers:
        raise WeightsError(
            f"{path} holds no Caffe layers: it is not a .caffemodel (a binary NetParameter); "
            "a mean .binaryproto or a solver state is not a model"
        )
    blobs: dict[str, list[torch.Tensor]] = {}
    for layer in layers:
        if layer.blobs:
            if layer.name in blobs:
                raise WeightsError(f"{path} has two layers named {layer.name!r} with weights")
            blobs[layer.name] = [_blob(b, layer.name, i, path) for i, b in enumerate(layer.blobs)]
    if not blobs:
        raise WeightsError(
            f"{path} has {len(layers)} layers but no weights: a network description saved in "
            "binary, or a pre-2014 (V0) file, which Caffe's upgrade_net_proto_binary converts"
        )
    if sha1 == BVLC_GOOGLENET_SHA1:
        log.info("%s is BVLC's bvlc_googlenet.caffemodel (sha1 %s)", path, sha1)
    else:
        log.debug("%s: Caffe network %r, sha1 %s (not BVLC's release file)", path, net.name, sha1)
    return net.name, blobs


def _blob(blob, layer: str, index: int, path: Path) -> torch.Tensor:
    """One BlobProto as a float32 tensor of its shape (current ``shape`` or legacy 4-D)."""
    if blob.HasField("shape"):
        shape = [int(d) for d in blob.shape.dim]
    else:
        shape = [int(blob.num), int(blob.channels), int(blob.height), int(blob.width)]
    values = blob.data if len(blob.data) else blob.double_data
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.int64)) != len(values):
        raise WeightsError(
            f"{path}: blob {index} of layer {layer!r} has {len(values):,} values for shape "
            f"{shape}; the file is damaged"
        )
    array = np.asarray(values, dtype=np.float32).reshape(shape)
    return torch.from_numpy(array)


# ---------------------------------------------------------------------------------------------
# The model the file describes
# ---------------------------------------------------------------------------------------------


def load_caffemodel(path: Path) -> tuple[GoogLeNetConfig, dict[str, torch.Tensor]]:
    """Read a GoogLeNet ``.caffemodel``: the ``paper`` configuration it fits and our state dict.

    The class count comes from ``loss3/classifier`` (1,000 for BVLC's, 365 for Places365 ...);
    1,000 classes get the ImageNet names in Caffe's order (the sorted synsets, torchvision's
    order too), others are numbered until ``load(class_names=...)`` names them.
    """
    name, blobs = read_caffemodel(path)
    renames = renamed_classifiers(blobs)
    for old, new in renames.items():
        log.info("%s: layer %r taken as %r (a classifier renamed for fine-tuning)", path, old, new)
    blobs = {renames.get(k, k): v for k, v in blobs.items()}
    _check_layers(path, name, blobs)
    fc = blobs["loss3/classifier"][0]
    num_classes = int(fc.shape[-2]) if fc.dim() >= 2 else 0
    from . import imagenet_categories

    try:
        config = preset_config(
            "paper",
            num_classes=num_classes,
            aux_logits=_AUX_LAYERS <= blobs.keys(),
            mean=CAFFE_MEAN,
            std=CAFFE_STD,
            class_names=tuple(imagenet_categories()) if num_classes == 1000 else None,
        )
    except ConfigError as err:
        raise WeightsError(f"{path}: 'loss3/classifier' does not fit GoogLeNet: {err}") from err
    state_dict = convert_caffe_blobs(blobs)
    _check_shapes(path, config, state_dict)
    return config, state_dict


def renamed_classifiers(blobs: dict[str, list[torch.Tensor]]) -> dict[str, str]:
    """Fine-tuning in Caffe renames a classifier (``loss3/classifier_places``) so that it starts
    afresh: a head without its ``*/classifier`` whose one unknown layer is such a rename gets it
    back. Returns ``{file's name: BVLC's name}``."""
    renames = {}
    for head in ("loss1", "loss2", "loss3"):
        if f"{head}/classifier" in blobs:
            continue
        others = [k for k in blobs if k.startswith(f"{head}/") and k not in CAFFE_LAYERS]
        if len(others) == 1 and "classifier" in others[0]:
            renames[others[0]] = f"{head}/classifier"
    return renames


def _check_layers(path: Path, name: str, blobs: dict[str, list[torch.Tensor]]) -> None:
    """GoogLeNet's layers, each with its weights and bias, and nothing else with parameters."""
    trunk = [k for k in CAFFE_LAYERS if k not in _AUX_LAYERS]
    missing = [k for k in trunk if k not in blobs]
    if len(missing) == len(trunk):
        some = ", ".join(repr(k) for k in list(blobs)[:3])
        raise WeightsError(
            f"{path} is a Caffe model of another network ({name!r}, layers {some} ...), not "
            "GoogLeNet: expected BVLC GoogLeNet's layers 'conv1/7x7_s2', 'inception_3a/1x1' ..."
        )
    if missing:
        raise WeightsError(
            f"{path} lacks GoogLeNet's layer {missing[0]!r} ({len(missing)} missing)"
        )
    aux = _AUX_LAYERS & blobs.keys()
    if aux and aux != _AUX_LAYERS:
        absent = sorted(_AUX_LAYERS - aux)[0]
        raise WeightsError(f"{path} has only part of the auxiliary heads (no {absent!r})")
    unknown = [k for k in blobs if k not in CAFFE_LAYERS]
    if unknown:
        raise WeightsError(
            f"{path} has a layer with parameters that BVLC GoogLeNet lacks: {unknown[0]!r} "
            "(the paper preset has no BatchNorm or scale layers)"
        )
    for layer, layer_blobs in blobs.items():
        if len(layer_blobs) != 2:
            raise WeightsError(
                f"{path}: layer {layer!r} has {len(layer_blobs)} blobs; expected 2 "
                "(weights and bias)"
            )


def _check_shapes(path: Path, config: GoogLeNetConfig, state_dict: dict[str, torch.Tensor]):
    """Every tensor's shape against the model's, naming the Caffe layer (the strict load would
    name only our key)."""
    with torch.device("meta"):
        expected = GoogLeNet(config).state_dict()
    caffe_name = {ours: caffe for caffe, ours in CAFFE_LAYERS.items()}
    for key, value in state_dict.items():
        want = expected.get(key)
        if want is not None and tuple(value.shape) != tuple(want.shape):
            module, _, what = key.rpartition(".")
            raise WeightsError(
                f"{path}: layer {caffe_name.get(module, module)!r} has {what} of shape "
                f"{list(value.shape)}; BVLC GoogLeNet's is {list(want.shape)}"
            )
