"""The one exception type users see.

Every expected failure (bad file, bad config, bad data) raises ``HGCError`` with a single line that
names what is wrong and where; the CLI prints it and exits non-zero without a traceback.
"""


class HGCError(Exception):
    """A user-facing error: one line, naming the file/field/key at fault."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
