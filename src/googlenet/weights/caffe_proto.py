"""The few messages of Caffe's ``caffe.proto`` that a ``.caffemodel`` needs, with its field numbers.

Declared here in Python (``descriptor_pb2`` + ``message_factory``) rather than as a generated
``_pb2`` module: a generated file is pinned to the protoc that made it and refuses newer or older
protobuf runtimes, while a descriptor built at import time works with every protobuf from 4.21 on.

Only what a weights file uses is declared; every other field of Caffe's messages (layer
parameters, fillers, phases) stays in the parsed message as an unknown field, which protobuf
keeps and ignores. Field numbers are BVLC's ``src/caffe/proto/caffe.proto``:

* ``NetParameter``: ``name = 1``, ``layers = 2`` (legacy V1), ``layer = 100``
* ``LayerParameter``: ``name = 1``, ``type = 2`` (a string), ``bottom = 3``, ``top = 4``,
  ``blobs = 7``
* ``V1LayerParameter`` (files saved before 2015, BVLC's GoogLeNet among them): ``bottom = 2``,
  ``top = 3``, ``name = 4``, ``type = 5`` (the ``LayerType`` enum), ``blobs = 6``
* ``BlobProto``: ``num = 1``, ``channels = 2``, ``height = 3``, ``width = 4`` (the legacy 4-D
  shape), ``data = 5`` (packed float), ``diff = 6``, ``shape = 7``, ``double_data = 8``,
  ``double_diff = 9``
* ``BlobShape``: ``dim = 1`` (packed int64)
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# V1LayerParameter.LayerType: the values a GoogLeNet file uses, so that the legacy layout can be
# written (by the tests) and its layer types named; other values stay unknown and are ignored.
V1_LAYER_TYPES = {
    "NONE": 0,
    "ACCURACY": 1,
    "CONCAT": 3,
    "CONVOLUTION": 4,
    "DATA": 5,
    "DROPOUT": 6,
    "INNER_PRODUCT": 14,
    "LRN": 15,
    "POOLING": 17,
    "RELU": 18,
    "SOFTMAX": 20,
    "SOFTMAX_LOSS": 21,
}


def _field(msg, name: str, number: int, kind: int, label: int = _OPTIONAL, type_name: str = ""):
    f = msg.field.add(name=name, number=number, type=kind, label=label)
    if type_name:
        f.type_name = type_name
    if label == _REPEATED and kind in (_F.TYPE_FLOAT, _F.TYPE_DOUBLE, _F.TYPE_INT64):
        f.options.packed = True
    return f


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="googlenet/caffe_subset.proto", package="caffe", syntax="proto2"
    )
    shape = fd.message_type.add(name="BlobShape")
    _field(shape, "dim", 1, _F.TYPE_INT64, _REPEATED)

    blob = fd.message_type.add(name="BlobProto")
    for name, number in (("num", 1), ("channels", 2), ("height", 3), ("width", 4)):
        _field(blob, name, number, _F.TYPE_INT64)
    _field(blob, "data", 5, _F.TYPE_FLOAT, _REPEATED)
    _field(blob, "diff", 6, _F.TYPE_FLOAT, _REPEATED)
    _field(blob, "shape", 7, _F.TYPE_MESSAGE, type_name=".caffe.BlobShape")
    _field(blob, "double_data", 8, _F.TYPE_DOUBLE, _REPEATED)
    _field(blob, "double_diff", 9, _F.TYPE_DOUBLE, _REPEATED)

    layer = fd.message_type.add(name="LayerParameter")
    _field(layer, "name", 1, _F.TYPE_STRING)
    _field(layer, "type", 2, _F.TYPE_STRING)
    _field(layer, "bottom", 3, _F.TYPE_STRING, _REPEATED)
    _field(layer, "top", 4, _F.TYPE_STRING, _REPEATED)
    _field(layer, "blobs", 7, _F.TYPE_MESSAGE, _REPEATED, ".caffe.BlobProto")

    v1 = fd.message_type.add(name="V1LayerParameter")
    enum = v1.enum_type.add(name="LayerType")
    for name, number in V1_LAYER_TYPES.items():
        enum.value.add(name=name, number=number)
    _field(v1, "bottom", 2, _F.TYPE_STRING, _REPEATED)
    _field(v1, "top", 3, _F.TYPE_STRING, _REPEATED)
    _field(v1, "name", 4, _F.TYPE_STRING)
    _field(v1, "type", 5, _F.TYPE_ENUM, type_name=".caffe.V1LayerParameter.LayerType")
    _field(v1, "blobs", 6, _F.TYPE_MESSAGE, _REPEATED, ".caffe.BlobProto")

    net = fd.message_type.add(name="NetParameter")
    _field(net, "name", 1, _F.TYPE_STRING)
    _field(net, "layers", 2, _F.TYPE_MESSAGE, _REPEATED, ".caffe.V1LayerParameter")
    _field(net, "layer", 100, _F.TYPE_MESSAGE, _REPEATED, ".caffe.LayerParameter")
    return fd


def _classes() -> dict[str, Any]:  # message classes protobuf builds at run time
    # A pool of our own, so that these declarations never clash with a caffe_pb2 (or another
    # package's "caffe.*" messages) in the default pool.
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(_file().SerializeToString())
    names = ("BlobShape", "BlobProto", "LayerParameter", "V1LayerParameter", "NetParameter")
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is None:  # protobuf < 4.22
        factory = message_factory.MessageFactory(pool)
        return {n: factory.GetPrototype(pool.FindMessageTypeByName(f"caffe.{n}")) for n in names}
    return {n: get_class(pool.FindMessageTypeByName(f"caffe.{n}")) for n in names}


_CLASSES = _classes()
BlobShape = _CLASSES["BlobShape"]
BlobProto = _CLASSES["BlobProto"]
LayerParameter = _CLASSES["LayerParameter"]
V1LayerParameter = _CLASSES["V1LayerParameter"]
NetParameter = _CLASSES["NetParameter"]
