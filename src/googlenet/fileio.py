"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The pattern is the usual one: write to a temporary file in the same directory, ``fsync`` it,
``os.replace`` it over the destination (atomic on POSIX), then ``fsync`` the directory so the
rename itself survives a power cut. On any error the temporary file is removed and the
destination is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import GoogLeNetError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success fsync it and move it over ``path``."""
    if not path.parent.is_dir():
        raise GoogLeNetError(
            f"cannot write {path}: directory {path.parent} does not exist; create it first"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise GoogLeNetError(f"cannot write {path}: {err.strerror or err}") from err
    os.close(fd)
    try:
        yield tmp
        # mkstemp (and some writers) create files 0600; give the result what open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise GoogLeNetError(f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_save(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` to produce the file, then move it to ``path`` atomically.

    For writers that want a file name (``safetensors.torch.save_file``, ``torch.save``,
    ``Figure.savefig``). Raises :class:`GoogLeNetError` (disk full, read-only directory, missing
    directory) with the destination untouched.
    """
    path = Path(path)
    with _replacing(path) as tmp:
        write(tmp)
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``with atomic_open(p, "w") as f: ...``: the file appears, whole, when the block ends."""
    if "w" not in mode:
        raise ValueError(f"atomic_open is for writing, got mode {mode!r}")
    with _replacing(Path(path)) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)
