"""User-facing errors.

Every mistake a user can make (a wrong path, a file that is not weights, an input that is too
small) raises a subclass of :class:`GoogLeNetError`. Its message is one line that names the
culprit and says what to do; the command line prints it without a traceback and exits with 2.
Anything else that escapes is a bug and keeps its traceback.

Under torchrun every process runs the same command, so most mistakes (a bad flag, a missing
folder) are found by every rank at once; those are printed by rank 0 only
(:attr:`GoogLeNetError.every_rank`).
"""

from __future__ import annotations


class GoogLeNetError(Exception):
    """A mistake in what the user asked for; ``str(err)`` is the whole, one-line explanation."""

    exit_code = 2
    # Raised alike on every rank of a torchrun job, so rank 0 alone prints it. An error that one
    # rank meets on its own sets this False on the instance.
    every_rank = True


class ConfigError(GoogLeNetError, ValueError):
    """An unknown preset, an unknown option, or options that contradict each other."""


class InputSizeError(GoogLeNetError, ValueError):
    """An input tensor the network cannot take (too small, wrong number of channels)."""


class WeightsError(GoogLeNetError, ValueError):
    """A weights file that is missing, unreadable, unsafe, or for another network."""


class DataError(GoogLeNetError, ValueError):
    """A data directory or image that cannot be used."""


class Interrupted(GoogLeNetError):
    """SIGINT or SIGTERM stopped a run after saving what it had; exit code 128 + the signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type's name): what a one-line
    error quotes of a library's multi-line failure."""
    for line in str(err).strip().splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__


def require(*modules: str, extra: str) -> None:
    """Raise a one-line :class:`ConfigError` naming the extra to install when one of ``modules``
    (optional dependencies) is missing, instead of an ImportError later."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"this needs the '{module}' package: pip install 'googlenet[{extra}]'"
            )
