"""The ``hgc`` command line: each subcommand parses, makes one call to a documented function, prints.

Expected failures arrive as ``HGCError`` and are printed as one line with a non-zero exit code.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

# the command modules register their subcommands in COMMANDS on import (in this order: the help's order)
from compress.cli import (  # noqa: F401
    convert_cmds,
    data_cmds,
    demo_cmds,
    export_cmds,
    pack_cmds,
    prune_cmds,
    recipe_cmds,
    train_eval,
)
from compress.cli.common import COMMANDS, command
from compress.errors import HGCError, first_line

__all__ = ["COMMANDS", "build_parser", "command", "main"]


def build_parser() -> argparse.ArgumentParser:
    """All registered subcommands."""
    parser = argparse.ArgumentParser(prog="hgc", description="Compress stacked-hourglass pose networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, setup in COMMANDS.items():
        setup(sub.add_parser(name, help=setup.help_text, description=setup.help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hgc`` and ``python -m compress``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except HGCError as exc:
        print(f"hgc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hgc {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the file system said no (permissions, a directory where a file should be, …)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"hgc {args.command}: error: {where}{exc.strerror or first_line(exc)}", file=sys.stderr)
        return 2
