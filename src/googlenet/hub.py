"""Hubs: ``model.save_pretrained(dir)``, ``googlenet.from_pretrained(dir_or_repo_id)`` and
``model.push_to_hub(repo_id)`` through ``huggingface_hub``'s :class:`ModelHubMixin`, and the
entry point of ``hubconf.py`` for ``torch.hub.load``.

A pretrained folder holds our safetensors file (``model.safetensors``: the weights and the
configuration, written by :func:`googlenet.save_weights`, read by :func:`googlenet.load`), the
configuration again as ``config.json`` for people and the Hub, and a model card (``README.md``:
preset, classes, training data and metrics when the run's files are given).

``huggingface_hub`` is the optional ``hub`` extra, imported on first use: this module imports
nothing heavy, so that :class:`HubMixin` can be a base of :class:`~googlenet.GoogLeNet`.

It imports nothing of the package above the ground either: the model file is written and read by
:mod:`googlenet.weights`, which builds models (so imports ``model``, whose base class is here) and
hands its writer and reader to this module when it is imported (:func:`register_files`). Every
import runs down: ``weights -> model -> hub``, and ``weights -> hub``.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from .errors import GoogLeNetError, WeightsError, require
from .fileio import atomic_write_text

# A googlenet.GoogLeNet: it derives from HubMixin, so it cannot be imported here, not even for
# the type checker (that import would be an arrow back up too).
Model = Any
M = TypeVar("M")

WEIGHTS_NAME = "model.safetensors"
REPO_URL = "https://github.com/googlenet/googlenet"  # the project's home, shown on model cards
PAPER_URL = "https://arxiv.org/abs/1409.4842"


class ModelFiles(NamedTuple):
    """How a model becomes ``model.safetensors`` and back: :func:`googlenet.save_weights`
    (``save(model, path)``) and :func:`googlenet.load` (``load(path, **kwargs)``)."""

    save: Callable[..., object]
    load: Callable[..., Model]


_files: list[ModelFiles] = []


def register_files(save: Callable[..., object], load: Callable[..., Model]) -> None:
    """Called by :mod:`googlenet.weights` on import (which ``import googlenet`` does): the writer
    and reader of model files the Hub methods use. Given rather than imported, so that no import
    runs back up from this module (see the module docstring)."""
    _files[:] = [ModelFiles(save, load)]


def _model_files() -> ModelFiles:
    if not _files:  # googlenet/__init__ imports googlenet.weights: only a broken install
        raise GoogLeNetError("googlenet.weights was not imported: import googlenet first")
    return _files[0]


def _require_hub() -> Any:
    require("huggingface_hub", extra="hub")
    import huggingface_hub

    return huggingface_hub


@functools.cache
def _hub_class() -> Any:
    """The :class:`ModelHubMixin` subclass that carries a GoogLeNet to and from the Hub (made on
    first use, so that ``huggingface_hub`` is imported only then)."""
    hf = _require_hub()

    # A base class known only at run time (the optional huggingface_hub): not checkable.
    class GoogLeNetHub(  # type: ignore[call-arg]
        hf.ModelHubMixin,  # type: ignore[name-defined]
        library_name="googlenet",
        repo_url=REPO_URL,
        paper_url=PAPER_URL,
        pipeline_tag="image-classification",
        tags=["googlenet", "inception-v1", "image-classification"],
        license="bsd-3-clause",
    ):
        def __init__(self, model: Model, run_dir: Path | None = None) -> None:
            self.model, self.run_dir = model, run_dir

        def _save_pretrained(self, save_directory: Path) -> None:
            _model_files().save(self.model, save_directory / WEIGHTS_NAME)
            config = self.model.config.to_dict()
            atomic_write_text(save_directory / "config.json", json.dumps(config, indent=2) + "\n")
            atomic_write_text(save_directory / "README.md", model_card(self.model, self.run_dir))

        @classmethod
        def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: Any,
                             force_download: bool, local_files_only: bool, token: Any,
                             **model_kwargs: Any) -> GoogLeNetHub:  # fmt: skip
            model_kwargs.pop("config", None)  # config.json: ours lives in the safetensors file
            if Path(model_id).is_dir():
                path = Path(model_id) / WEIGHTS_NAME
                if not path.is_file():
                    raise WeightsError(f"{model_id} has no {WEIGHTS_NAME}: not a saved googlenet")
            else:
                path = hf.hf_hub_download(
                    repo_id=model_id, filename=WEIGHTS_NAME, revision=revision,
                    cache_dir=cache_dir, force_download=force_download,
                    local_files_only=local_files_only, token=token,
                )  # fmt: skip
            return cls(_model_files().load(path, **model_kwargs))

    return GoogLeNetHub


class HubMixin:
    """``save_pretrained``, ``push_to_hub`` and ``from_pretrained`` for :class:`GoogLeNet`,
    through ``huggingface_hub`` (the ``hub`` extra), imported when first called."""

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        run_dir: str | os.PathLike[str] | None = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write ``model.safetensors``, ``config.json`` and a model card to ``save_directory``
        (and push it with ``push_to_hub=True``). ``run_dir`` is the training run's output folder:
        its ``metrics.csv`` and ``config.json`` fill the card's metrics and training data."""
        wrapper = _hub_class()(self, Path(run_dir) if run_dir else None)
        return wrapper.save_pretrained(
            save_directory, push_to_hub=push_to_hub, repo_id=repo_id, **push_to_hub_kwargs
        )

    def push_to_hub(self, repo_id: str, *, run_dir: str | None = None, **kwargs: Any) -> str:
        """Upload the model (weights, configuration, card) to the Hub repository ``repo_id``."""
        wrapper = _hub_class()(self, Path(run_dir) if run_dir else None)
        return wrapper.push_to_hub(repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls: type[M], model_id: str | os.PathLike[str], **kwargs: Any) -> M:
        """The model saved in a local folder or a Hub repository (``user/name``); ``kwargs`` go
        to :func:`googlenet.load` (``num_classes=``, ``aux_logits=``...) or to the download
        (``revision=``, ``token=``, ``cache_dir=``...)."""
        return from_pretrained(model_id, **kwargs)


def from_pretrained(model_id: str | os.PathLike[str], **kwargs: Any) -> Model:
    """``googlenet.from_pretrained``: see :meth:`HubMixin.from_pretrained`."""
    return _hub_class().from_pretrained(str(model_id), **kwargs).model


# ---------------------------------------------------------------------------------------------
# The model card
# ---------------------------------------------------------------------------------------------


def model_card(model: Model, run_dir: Path | None = None) -> str:
    """The README.md of a saved model: Hub metadata, the model, its classes, how it was trained
    and its metrics (from ``run_dir``'s ``config.json`` and ``metrics.csv`` when there)."""
    c = model.config
    names = list(c.class_names or [f"class_{i}" for i in range(c.num_classes)])
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    lines = [
        "---",
        "library_name: googlenet",
        "license: bsd-3-clause",
        "pipeline_tag: image-classification",
        "tags: [googlenet, inception-v1, image-classification]",
        "---",
        "",
        f"# GoogLeNet ({c.preset}), {c.num_classes} classes",
        "",
        f"GoogLeNet / Inception v1 ([Szegedy et al. 2014]({PAPER_URL})), preset `{c.preset}`, "
        f"input {c.input_size} x {c.input_size}, made with [googlenet]({REPO_URL}).",
        "",
        f"- Classes: {shown}",
        f"- Preprocessing: mean {list(c.mean)}, std {list(c.std)}",
        f"- Parameters: {sum(p.numel() for p in model.parameters()):,}",
        "",
        "```python",
        "import googlenet",
        'model = googlenet.from_pretrained("THIS_REPO_OR_FOLDER")',
        'print(googlenet.Predictor(model)(["cat.jpg"])[0].topk)',
        "```",
        "",
    ]
    return "\n".join(lines + _training_section(run_dir)) + "\n"


def _training_section(run_dir: Path | None) -> list[str]:
    if run_dir is None:
        return ["## Training", "", "Not recorded: saved without the run's folder."]
    lines = ["## Training", ""]
    config = run_dir / "config.json"
    if config.is_file():
        data = json.loads(config.read_text()).get("data", {})
        lines.append(
            f"- Data: {data.get('train')} ({data.get('train_images')} images), "
            f"validation {data.get('val')} ({data.get('val_images')} images)"
        )
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        with metrics.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            last = rows[-1]
            lines += ["", "## Metrics (last epoch of the run)", "", "| metric | value |",
                      "| --- | --- |"]  # fmt: skip
            lines += [f"| {k} | {v} |" for k, v in last.items() if v not in ("", None)]
    if len(lines) == 2:
        lines.append(f"No config.json or metrics.csv in {run_dir}.")
    return lines
