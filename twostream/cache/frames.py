"""Which RGB frames of a video the cache keeps (``cache.frames``).

The spatial stream trains on one random frame per video per draw and tests on ``test.num_positions``
evenly spaced frames; it never needs every frame, and frames are most of a cache's bytes. A
:class:`FrameSelection` names the frame indices of the *source video* that are stored:

- ``all``: every frame.
- ``every``: frames 0, k, 2k, ... plus the test protocol's positions.
- ``protocol``: the test protocol's positions plus ``train_frames`` more: the centres of equal bins
  of the frames that are not test positions (so that they never coincide with them).

The test protocol's positions are :func:`evenly_spaced` over the video's frame count, so a cache
that keeps them scores exactly the frames an every-frame cache scores.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twostream.errors import ConfigError

KEEP = ("all", "every", "protocol")


def evenly_spaced(count: int, available: int) -> list[int]:
    """``count`` positions spread evenly over ``available`` (all of them if there are fewer)."""
    if available <= count:
        return list(range(available))
    return np.linspace(0, available - 1, count).round().astype(int).tolist()


def bin_centres(count: int, available: int) -> list[int]:
    """The centres of ``count`` equal bins of ``available`` (all of them if there are fewer)."""
    if available <= count:
        return list(range(available))
    return np.floor((np.arange(count) + 0.5) * available / count).astype(int).tolist()


@dataclass(frozen=True)
class FrameSelection:
    """Which frames of a video of ``num_frames`` frames the cache keeps (``conf/cache`` ``frames``)."""

    keep: str = "all"
    every: int = 1  # keep="every": the stride k
    train_frames: int = 0  # keep="protocol": frames kept besides the test positions
    test_positions: int = 25  # the test protocol's positions per video (test.num_positions)

    def __post_init__(self) -> None:
        if self.keep not in KEEP:
            raise ConfigError(f"cache.frames.keep={self.keep!r}: expected one of {', '.join(KEEP)}")
        for name, low in (("every", 1), ("train_frames", 0), ("test_positions", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"cache.frames.{name}={value!r}: expected an integer >= {low}")

    @classmethod
    def from_config(cls, frames: Mapping[str, Any] | None, test_positions: int) -> "FrameSelection":
        """From ``cache.frames`` (None: every frame) and ``test.num_positions``."""
        frames = dict(frames or {})
        return cls(keep=frames.get("keep", "all"), every=frames.get("every", 1),
                   train_frames=frames.get("train_frames", 0), test_positions=test_positions)

    def indices(self, num_frames: int) -> list[int]:
        """The sorted frame indices of a video of ``num_frames`` frames that are stored."""
        if self.keep == "all":
            return list(range(num_frames))
        kept = set(evenly_spaced(self.test_positions, num_frames))
        if self.keep == "every":
            return sorted(kept | set(range(0, num_frames, self.every)))
        # Bin centres of all frames would fall on test positions whenever the counts share a
        # factor (6 of 186 frames: all 6 are among the 25 test positions): take them among the others.
        others = [t for t in range(num_frames) if t not in kept]
        return sorted(kept | {others[i] for i in bin_centres(self.train_frames, len(others))})

    def fingerprint(self) -> dict[str, Any] | None:
        """What a cache made with this selection records (None for every frame, which caches made
        before the setting existed hold too)."""
        if self.keep == "all":
            return None
        detail = {"every": self.every} if self.keep == "every" else {"train_frames": self.train_frames}
        return {"keep": self.keep, **detail, "test_positions": self.test_positions}
