"""Running a network: the one home of every runtime each task uses.

* :mod:`~googlenet.runtime.device`: where and in what precision (``--device``, ``--amp``);
  :mod:`~googlenet.runtime.distributed`: torchrun, DDP, rank-0 I/O.
* :mod:`~googlenet.runtime.fuse`: the fused inference network (BatchNorm and transform_input
  folded, 1x1s merged, FastLRN); :mod:`~googlenet.runtime.sessions`: ONNX Runtime and OpenVINO
  sessions (one runner for both, and exported ``.onnx`` files); :mod:`~googlenet.runtime.int8`:
  int8 files; :mod:`~googlenet.runtime.backends`: ``BACKENDS`` and
  :func:`~googlenet.runtime.backends.optimize_for_inference`, which picks among them.
* :mod:`~googlenet.runtime.predictor`: :class:`Predictor`, images in, top-k out, on any backend;
  :mod:`~googlenet.runtime.cam`: class activation maps.
* :mod:`~googlenet.runtime.training`: the training step's speed-ups;
  :mod:`~googlenet.runtime.evaluation`: the evaluation pass that training and ``googlenet eval``
  share.

Submodules are imported where they are used (``from googlenet.runtime.backends import ...``):
several pull in torchvision's transforms or ONNX, which ``googlenet --help`` should not pay for.
"""
