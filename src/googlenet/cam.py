"""``googlenet cam``: class activation maps of image files, drawn over each image and saved.

The maps themselves: :mod:`googlenet.runtime.cam`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .data import (
    collect_images,
    open_image,
)
from .errors import ConfigError, DataError
from .fileio import refuse_overwrite
from .runtime.cam import check_colormap, save_cam
from .runtime.predictor import Predictor


def cam_paths(images: Sequence[Path], out: Path) -> list[Path]:
    """Where each image's CAM goes: ``out`` itself for one image and an ``out`` ending in .png,
    else ``out/<name>_cam.png`` in a folder (created if its parent exists)."""
    if out.suffix.lower() == ".png" and not out.is_dir():
        if len(images) > 1:
            raise ConfigError(f"--out {out} is one file for {len(images)} images; give a folder")
        if not out.parent.is_dir():
            raise ConfigError(f"cannot write {out}: directory {out.parent} does not exist")
        return [out]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (or a .png for one image)")
    if not out.exists():
        if not out.parent.is_dir():
            raise ConfigError(f"cannot create {out}: directory {out.parent} does not exist")
        out.mkdir()
    paths, taken = [], set()
    for image in images:
        name, n = f"{image.stem}_cam.png", 1
        while name in taken:  # a/x.jpg and b/x.jpg
            n += 1
            name = f"{image.stem}_cam{n}.png"
        taken.add(name)
        paths.append(out / name)
    return paths


def cam_files(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    topk: int = 1,
    cmap: str = "jet",
    alpha: float = 0.5,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    force: bool = False,
) -> tuple[list[Path], int]:
    """A CAM PNG for every image ``inputs`` name (see :func:`cam_paths` for where each goes).

    Class names and the output paths are checked before any image is read (an existing PNG is
    replaced only with ``force``). Each unreadable image is reported and skipped. Each figure
    and report line gives the class's probability on the whole image, which the map is computed
    on, and the one ``predict`` gives with the predictor's crops. Returns ``(written files,
    failed inputs)``.
    """
    predictor.require_model()
    if not 0 < alpha <= 1:
        raise ConfigError(f"--alpha must be in (0, 1], got {alpha}")
    for name in classes or []:
        predictor.class_index(name)
    check_colormap(cmap)
    paths, problems = collect_images(inputs, report)
    written = []
    failed = len(problems)
    pngs = cam_paths(paths, Path(out))
    refuse_overwrite(pngs, force)
    for image_path, png in zip(paths, pngs, strict=True):
        try:
            picture = open_image(image_path)
        except DataError as err:
            report(str(err))
            failed += 1
            continue
        maps = predictor.cam(picture, classes=classes, topk=topk)
        probs = predictor.probabilities([picture])[0]
        predicted = [float(probs[m.index]) for m in maps]
        written.append(
            save_cam(picture, maps, png, cmap, alpha, predicted=predicted, crops=predictor.crops)
        )
        top = ", ".join(
            f"{m.name} {m.prob:.1%} on the whole image, {p:.1%} in predict"
            for m, p in zip(maps, predicted, strict=True)
        )
        report(f"wrote {png} ({top})")
    return written, failed
