"""Errors that tell the user what to run or change."""


class StageError(RuntimeError):
    """A stage cannot run; the message says what is missing and how to fix it."""
