"""hourglass-compress: make trained stacked-hourglass pose networks smaller and faster, with evidence."""

__version__ = "0.1.0"
