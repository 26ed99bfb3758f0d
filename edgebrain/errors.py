"""Errors that carry where a problem is and what was expected.

Every error a user can cause (a bad file, a bad parameter, a bad input array) is an
:class:`EdgebrainError`. Its message is one line naming the file, the node or field,
and what was expected; the CLI prints it and exits with code 2, without a traceback.
"""

from __future__ import annotations


class EdgebrainError(Exception):
    """A problem the user can fix, reported as one line."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file = None if file is None else str(file)
        self.where = where
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.where:
            parts.append(self.where)
        prefix = ": ".join(parts)
        msg = f"{prefix}: {self.detail}" if prefix else self.detail
        return " ".join(msg.split("\n")).replace("\r", " ")  # always one line (the CLI prints it as such)

    def with_file(self, file: str) -> "EdgebrainError":
        """Return the same error with the file name filled in (if it was missing)."""
        if self.file is None:
            self.file = str(file)
            self.args = (self._format(),)
        return self


class ModelError(EdgebrainError):
    """A model graph is malformed or uses something edgebrain cannot run."""


class FormatError(EdgebrainError):
    """A file is truncated, corrupted, or not in the expected format."""


class InputError(EdgebrainError):
    """An input array has the wrong shape, dtype or values."""


class OutputError(EdgebrainError):
    """An output cannot be written where asked (a link, a directory, a device, the input itself)."""


def user_error_message(e: BaseException) -> str:
    """The one line to show for an error the user can fix: an :class:`EdgebrainError` as it is,
    an operating-system error (file not found, permission denied, disk full) with its file, and
    running out of memory with what to try."""
    if isinstance(e, EdgebrainError):
        return str(e)
    if isinstance(e, FileNotFoundError):
        return f"{e.filename}: file not found"
    if isinstance(e, OSError):
        return f"{e.filename}: {e.strerror or e}" if e.filename else f"{e.strerror or e}"
    if isinstance(e, MemoryError):
        return "not enough memory for this model and input (try a smaller batch or a shorter input)"
    return f"{type(e).__name__}: {e}"
