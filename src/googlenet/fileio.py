"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The pattern is the usual one: write to a temporary file in the same directory, ``fsync`` it,
``os.replace`` it over the destination (atomic on POSIX), then ``fsync`` the directory so the
rename itself survives a power cut. On any error the temporary file is removed and the
destination is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from . import faults
from .errors import GoogLeNetError

try:
    import fcntl
except ImportError:  # Windows: no flock; output_lock is then a no-op (see there)
    fcntl = None  # type: ignore[assignment]

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


def _os_error(err: BaseException | None) -> OSError | None:
    """The OSError behind ``err``: itself, or the one a writer wrapped (``torch.save`` into a
    Python file turns ENOSPC into a RuntimeError whose ``__context__`` is the OSError)."""
    seen: set[int] = set()
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


# ---------------------------------------------------------------------------------------------
# One writer per output directory
# ---------------------------------------------------------------------------------------------

LOCK_NAME = ".googlenet.lock"
# Creating the lock file fails like this in a directory nobody may write to: such a run fails at
# its first write with its own message, and there is nothing for a second writer to overwrite.
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def output_lock(
    directory: str | os.PathLike[str], command: str, flag: str = "--output-dir"
) -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (created if missing) while the block runs.

    A second ``googlenet`` process that asks for the same directory gets a one-line
    :class:`GoogLeNetError` (exit 2) that names the holder (pid, host, command, since when) and
    ``flag``. The lock is ``fcntl.flock`` on ``DIR/.googlenet.lock``: the kernel releases it when
    the holder's process ends, however it ends (SIGKILL, OOM killer), so a dead run never blocks
    the next one, and no PID file has to be judged stale. (We call flock ourselves rather than
    through ``filelock`` because we need its descriptor: the holder is written into the locked
    file, and the file is removed on release, which is only safe with the inode check below.)
    Local file systems and NFSv4 honour flock across machines; some network file systems do not.

    On leaving, the lock file is removed, and so is ``directory`` (and the parents this call
    created) if nothing else was written there: a run refused at its set-up leaves no trace.
    """
    directory = Path(directory)
    made = _missing_parents(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GoogLeNetError(
            f"cannot use {directory} as {flag}: {err.strerror or err}; choose another {flag}"
        ) from err
    path = directory / LOCK_NAME
    fd = _acquire(path, directory, command, flag)
    try:
        if fd is not None:
            host, now = socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
            os.ftruncate(fd, 0)
            os.write(fd, f"googlenet {command}, pid {os.getpid()} on {host}, since {now}".encode())
        yield directory
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)  # while still held: a process that opened it retries (_acquire)
            os.close(fd)
        for folder in made:  # deepest first; only empty ones go
            with contextlib.suppress(OSError):
                folder.rmdir()


def _missing_parents(directory: Path) -> list[Path]:
    """``directory`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for folder in (directory, *directory.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def _acquire(path: Path, directory: Path, command: str, flag: str) -> int | None:
    """A descriptor of ``path`` holding its exclusive flock (None where locks cannot be had)."""
    if fcntl is None:
        return None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in _UNWRITABLE:
                return None
            raise GoogLeNetError(f"cannot lock {directory}: {err.strerror or err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise GoogLeNetError(
                f"{directory} is in use by {_holder(path)}: one process writes a directory at a "
                f"time; wait for that one to end (or stop it), or choose another {flag}"
            ) from None
        except OSError as err:  # ENOLCK: a file system without locks
            os.close(fd)
            raise GoogLeNetError(
                f"cannot lock {directory} ({err.strerror or err}): its file system has no file "
                f"locks; choose a {flag} on a local disk"
            ) from err
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file as we opened it: lock the one there now


def _holder(path: Path) -> str:
    """Who holds the lock, as it wrote into the lock file (it may be writing it right now)."""
    for _ in range(20):
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return text
        time.sleep(0.05)
    return "another process"
