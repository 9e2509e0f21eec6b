"""Errors that tell the user what to run or change.

A :class:`UserError` is an expected failure: bad config values, missing or malformed data, a
stage run before the one it needs, settings that differ from what a cache or checkpoint was made
with. The command line prints its message as it is, with no traceback, and exits with 1; anything
else is a bug and keeps its traceback. Each subclass is also the built-in error it refines, so
code that catches ``ValueError`` or ``FileNotFoundError`` still catches it.
"""

from collections.abc import Sequence
from pathlib import Path


class UserError(Exception):
    """An expected failure; the message names what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """The composed config asks for something that cannot work (found before any work starts)."""


class StageError(UserError, RuntimeError):
    """A stage cannot run; the message says what is missing and how to fix it."""


class DataError(UserError, ValueError):
    """A dataset's files (split lists, video folders, a generated dataset) are not as expected."""


class MissingDataError(UserError, FileNotFoundError):
    """A dataset's folder, split file or videos are not where the config says."""


def shortened(items: Sequence[object], listing: Path | None, shown: int = 5) -> str:
    """The first ``shown`` items, then how many more; with ``listing``, every item is written
    there (one per line) and the text says so. For lists too long to read in a terminal."""
    text = ", ".join(str(i) for i in items[:shown])
    if len(items) > shown:
        text += f" and {len(items) - shown} more"
    if listing is not None:
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{i}\n" for i in items))
        text += f" (all {len(items)} in {listing})"
    return text
