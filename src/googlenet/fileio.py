"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The pattern is the usual one: write to a temporary file in the same directory, ``fsync`` it,
``os.replace`` it over the destination (atomic on POSIX), then ``fsync`` the directory so the
rename itself survives a power cut. On any error the temporary file is removed and the
destination is untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from . import faults
from .errors import GoogLeNetError

# mkstemp's names for our temporary files: ".<destination name>.<8 random characters>.tmp".
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


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
        faults.inject("write", path.name)
        # mkstemp (and some writers) create files 0600; give the result what open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        cause = _os_error(err)
        if cause is None:  # not a failed write: a bug, keep its traceback
            raise
        raise GoogLeNetError(f"cannot write {path}: {cause.strerror or cause}") from err
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind ``err``: itself, or the one a writer wrapped (``torch.save`` into a
    Python file turns ENOSPC into a RuntimeError whose ``__context__`` is the OSError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def refuse_overwrite(paths: Iterable[str | os.PathLike[str]], force: bool = False) -> None:
    """One line, before any work, if an output is already there and ``force`` is not set: no
    command replaces a file it did not just make unless told to (``--force``)."""
    if force:
        return
    there = [Path(p) for p in paths if Path(p).exists()]
    if there:
        more = f" (and {len(there) - 1} more)" if len(there) > 1 else ""
        raise GoogLeNetError(f"{there[0]} already exists{more}: pass --force to overwrite it")


def atomic_save(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` to produce the file, then move it to ``path`` atomically.

    For writers that want a file name (``safetensors.torch.save_file``, ``Figure.savefig``; give
    ``torch.save`` an open Python file, see :func:`torch_save`, so that a full disk surfaces as
    an OSError rather than as a C++ "unexpected pos" error). Raises :class:`GoogLeNetError`
    (disk full, read-only directory, missing directory) with the destination untouched.
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


def torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, through a Python file object (see above)."""

    def write(tmp: str) -> None:
        import torch

        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_save(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that writes killed half-way left in ``directory``.

    A process killed with SIGKILL (or by a power cut) cannot clean up after itself: its
    ``.last.pt.XXXXXXXX.tmp`` stays, as big as a checkpoint, and a run killed often would fill the
    disk with them. Call this when taking over a directory that no other process writes to (a run
    that resumes). Returns what was removed.
    """
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if _TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed
