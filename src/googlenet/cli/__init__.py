"""The ``googlenet`` command line: argparse in front, each subcommand a thin call into a task.

Each subcommand is a module here with ``add(sub)``, which declares its flags, and
``run(args) -> int``, which calls one task and returns the exit code; it is registered by one
line in :data:`COMMANDS`. The flags every subcommand shares, their types and the exit codes are
in :mod:`googlenet.cli.args`. User mistakes raise :class:`GoogLeNetError` (or fail argparse's
checks) and end as one line on stderr with exit code 2; Ctrl-C exits with 130, SIGTERM with 143.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ..errors import GoogLeNetError, Interrupted
from . import (
    bench,
    cam,
    convert_weights,
    demo,
    export,
    predict,
    serve,
    shard,
    study,
    summary,
    train,
)
from . import eval as eval_  # noqa: E402
from .args import (  # noqa: F401  (the argument types, importable from googlenet.cli)
    PROG,
    HelpFormatter,
    Parser,
    existing_file,
    input_size,
    nonnegative_float,
    nonnegative_int,
    number,
    positive_float,
    positive_int,
    rank,
)

COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "summary": (summary.add, summary.run),
    "convert-weights": (convert_weights.add, convert_weights.run),
    "predict": (predict.add, predict.run),
    "cam": (cam.add, cam.run),
    "export": (export.add, export.run),
    "train": (train.add, train.run),
    "eval": (eval_.add, eval_.run),
    "demo": (demo.add, demo.run),
    "study": (study.add, study.run),
    "bench": (bench.add, bench.run),
    "serve": (serve.add, serve.run),
    "shard": (shard.add, shard.run),
}


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand's parser shows its defaults in --help."""

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", HelpFormatter)
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(
        prog=PROG,
        description="GoogLeNet (Inception v1), faithful to Szegedy et al. 2014. Exit codes: "
        "0 done; 1 a bug or a failed export check; 2 a user mistake or unreadable inputs; "
        "130/143 interrupted (Ctrl-C/SIGTERM).",
    )
    parser.register("action", "parsers", _SubParsers)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # which flags were typed (train)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"%(asctime)s {PROG}: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    run = COMMANDS[args.command][1]
    try:
        return run(args)
    except GoogLeNetError as err:
        if err.every_rank and rank() != 0:  # rank 0 says it for the whole torchrun job
            return err.exit_code
        what = "" if isinstance(err, Interrupted) else "error: "
        print(f"{PROG} {args.command}: {what}{err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `googlenet summary | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
