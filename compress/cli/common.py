"""The subcommand registry shared by ``compress.cli`` and its command modules.

Command modules register themselves here with ``@command``; ``compress.cli`` imports them and builds the
parser from ``COMMANDS``, so no command module imports the package that imports it.
"""
from __future__ import annotations

import argparse
from typing import Callable

COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def command(name: str, help_text: str) -> Callable:
    """Register ``setup(parser)`` as the subcommand ``name``."""

    def add(setup: Callable[[argparse.ArgumentParser], None]) -> Callable:
        setup.help_text = help_text  # type: ignore[attr-defined]
        COMMANDS[name] = setup
        return setup

    return add
