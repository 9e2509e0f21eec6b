"""What a stage may record about its run, without knowing where it goes.

The stages (extract, train, test, fuse) write metrics, tables, images and artefacts to a
:class:`RunLog`; the pipeline hands them a W&B run (:class:`twostream.tracking.Tracker`), which
is one. Keeping this contract below the stages lets them be read, run and tested without W&B.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Where a run's record goes (``tracking.mode``): local files, a server, or nowhere. Here, below the
# stages, so that the config checks can read them without importing the tracker.
TRACKING_MODES = ("offline", "online", "disabled")


class RunLog(Protocol):
    """The record of one stage's run. Every method may be a no-op (tracking disabled)."""

    @property
    def enabled(self) -> bool:
        """False when nothing is recorded: callers may skip preparing what they would log."""
        ...

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """One history row of metrics."""
        ...

    def set_summary(self, metrics: Mapping[str, Any]) -> None:
        """Final values of the run."""
        ...

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table under ``key``, as a final result of the run (not a point of its history)."""
        ...

    def log_images(self, key: str, images: Sequence[np.ndarray], captions: Sequence[str]) -> None:
        """RGB uint8 images (H, W, 3) under ``key``, each with its caption, each at its own size."""
        ...

    def log_artifact(self, paths: str | Path | Sequence[str | Path], name: str, type: str) -> None:
        """Files and folders as one named artefact of the given type."""
        ...
