"""``python -m compress`` runs the ``hgc`` command line."""
import sys

from compress.cli import main

sys.exit(main())
