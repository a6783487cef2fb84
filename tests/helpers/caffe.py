"""Caffe GoogLeNet files made by the tests: random weights at a trained network's scale, every
layer of BVLC's train_val.prototxt, written in the current or the legacy V1 layout with the
package's protobuf declarations.

The layer table here is written out from the prototxt and Table 1, not taken from the package's
name map, so the import is checked against an independent description of the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from googlenet.model import TABLE1
from googlenet.weights.caffe_proto import V1_LAYER_TYPES, NetParameter

CAFFE_DATA = Path(__file__).parents[1] / "data" / "caffe"
DEPLOY = CAFFE_DATA / "deploy.prototxt"
TRAIN_VAL = CAFFE_DATA / "train_val.prototxt"
CAFFE_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


def googlenet_layers(num_classes: int = 1000, aux: bool = True) -> dict[str, list[tuple]]:
    """Caffe layer name -> shapes of its [weights, bias] blobs (Caffe's order: out, in, kh, kw)."""
    layers: dict[str, list[tuple]] = {
        "conv1/7x7_s2": [(64, 3, 7, 7), (64,)],
        "conv2/3x3_reduce": [(64, 64, 1, 1), (64,)],
        "conv2/3x3": [(192, 64, 3, 3), (192,)],
    }
    for spec in TABLE1:
        name, cin = f"inception_{spec.name[-2:]}", spec.in_channels
        c1, c3r, c3, c5r, c5, pp = spec.widths
        for branch, shape in (
            ("1x1", (c1, cin, 1, 1)),
            ("3x3_reduce", (c3r, cin, 1, 1)),
            ("3x3", (c3, c3r, 3, 3)),
            ("5x5_reduce", (c5r, cin, 1, 1)),
            ("5x5", (c5, c5r, 5, 5)),
            ("pool_proj", (pp, cin, 1, 1)),
        ):
            layers[f"{name}/{branch}"] = [shape, shape[:1]]
        if aux and spec.name in ("inception4a", "inception4d"):
            head = "loss1" if spec.name == "inception4a" else "loss2"
            layers[f"{head}/conv"] = [(128, spec.out_channels, 1, 1), (128,)]
            layers[f"{head}/fc"] = [(1024, 2048), (1024,)]
            layers[f"{head}/classifier"] = [(num_classes, 1024), (num_classes,)]
    layers["loss3/classifier"] = [(num_classes, 1024), (num_classes,)]
    return layers


def prototxt_layers(path: Path) -> dict[str, tuple[str, int]]:
    """Layers with parameters in a prototxt: name -> (type, num_output). A regex is enough for
    BVLC's files, which put name, type and the parameter block in this order."""
    text = path.read_text()
    found = {}
    for block in re.split(r"\n(?=layer \{)", text):
        name = re.search(r'name: "([^"]+)"', block)
        kind = re.search(r'type: "([^"]+)"', block)
        out = re.search(r"num_output: (\d+)", block)
        if name and kind and kind.group(1) in ("Convolution", "InnerProduct"):
            found[name.group(1)] = (kind.group(1), int(out.group(1)))
    return found


def random_blobs(
    num_classes: int = 1000, aux: bool = True, seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """Weights at a trained network's scale: He-normal weights (the activations neither die nor
    explode over 22 layers on 0-255 input) and small positive biases."""
    rng = np.random.default_rng(seed)
    blobs = {}
    for name, (wshape, bshape) in googlenet_layers(num_classes, aux).items():
        fan_in = int(np.prod(wshape[1:]))
        scale = np.sqrt(2.0 / fan_in) * (0.4 if "classifier" in name else 1.0)
        w = rng.normal(0.0, scale, wshape).astype(np.float32)
        if name == "conv1/7x7_s2":
            w /= 64.0  # conv1 reads 0-255 pixels minus the mean, not unit-variance input
        b = rng.normal(0.05, 0.05, bshape).astype(np.float32)
        blobs[name] = [w, b]
    return blobs


def write_caffemodel(
    path: Path, blobs: dict[str, list[np.ndarray]], *, legacy: bool = False, name="GoogleNet"
) -> Path:
    """A .caffemodel of ``blobs``: ``layer`` with BlobShape, or (``legacy``) V1 ``layers`` with
    4-D num/channels/height/width blobs, as BVLC's 2014 file has. A few parameter-free layers
    are written too, as Caffe does."""
    net = NetParameter(name=name)
    layers = net.layers if legacy else net.layer
    for extra in ("data", "conv1/relu_7x7", "pool1/3x3_s2"):
        layers.add(name=extra)
    for layer_name, arrays in blobs.items():
        conv = arrays[0].ndim == 4
        layer = layers.add(name=layer_name)
        if legacy:
            layer.type = V1_LAYER_TYPES["CONVOLUTION" if conv else "INNER_PRODUCT"]
        else:
            layer.type = "Convolution" if conv else "InnerProduct"
        for array in arrays:
            blob = layer.blobs.add()
            if legacy:
                shape4 = (1,) * (4 - array.ndim) + array.shape
                blob.num, blob.channels, blob.height, blob.width = shape4
            else:
                blob.shape.dim.extend(array.shape)
            blob.data.extend(array.ravel().tolist())
    path.write_bytes(net.SerializeToString())
    return path


def caffe_input(images_rgb: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 RGB images as Caffe takes them: BGR, 0-255 minus the mean, NCHW."""
    bgr = images_rgb[..., ::-1].astype(np.float32) - CAFFE_MEAN_BGR
    return np.ascontiguousarray(bgr.transpose(0, 3, 1, 2))
