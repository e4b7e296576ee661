"""One exception type for every user-facing error: the CLI prints its message on one line and exits 2."""


class TaoError(Exception):
    """A problem with the user's input or configuration (not a bug in opentao)."""
