"""The one exception type users see.

Every expected failure (bad file, bad config, bad data) raises ``HGCError`` with a single line that
names what is wrong and where; the CLI prints it and exits non-zero without a traceback.
"""


class HGCError(Exception):
    """A user-facing error: one line, naming the file/field/key at fault."""
