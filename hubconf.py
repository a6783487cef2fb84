"""torch.hub entry points: ``torch.hub.load(repo_or_dir, "googlenet", preset=..., weights=...)``.

``repo_or_dir`` is this repository on GitHub (``owner/googlenet``) or a local clone with
``source="local"``. The package is imported from this checkout's ``src/``.
"""

import os
import sys

dependencies = ["torch", "torchvision", "safetensors", "numpy", "PIL"]

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)


def googlenet(preset="paper", weights=None, **kwargs):
    """GoogLeNet (Inception v1, Szegedy et al. 2014).

    ``preset``: paper, paper-bn or torchvision, for a new model (``num_classes=``,
    ``input_size=``... as :func:`googlenet.create_model` takes them). ``weights``: a file
    :func:`googlenet.load` reads (our safetensors, torchvision's ``googlenet-1378be20.pth``, a
    training checkpoint) or a folder written by ``model.save_pretrained``.
    """
    from googlenet.weights.pretrained import torch_hub_model

    return torch_hub_model(preset, weights, **kwargs)
