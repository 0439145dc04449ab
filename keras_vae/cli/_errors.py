"""The exit codes of `keras-vae` and the error types the commands raise for them.

`_app.EXIT_CODES` maps each type to its code; `_app.main` prints one line.
"""

PROG = "keras-vae"

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_RUN_FOLDER, EXIT_CORRUPT, EXIT_INTERRUPTED = (
    0, 1, 2, 3, 4, 130)


class UsageError(Exception):
    """Bad or conflicting arguments (exit 2). `prog` is the command that refused them."""

    def __init__(self, message, prog=PROG):
        super().__init__(message)
        self.prog = prog


class CommandFailed(Exception):
    """A command could not do its work, for a reason other than its input (exit 1)."""


class Interrupted(Exception):
    """A command stopped by Ctrl-C after saving what it could (exit 130)."""


__all__ = [
    "PROG", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_RUN_FOLDER", "EXIT_CORRUPT",
    "EXIT_INTERRUPTED", "UsageError", "CommandFailed", "Interrupted",
]
