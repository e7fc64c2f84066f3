"""``hgc data preview`` and ``hgc bench-data``: look at the benchmark before trusting it, and time it."""
from __future__ import annotations

import argparse

from compress.cli import command
