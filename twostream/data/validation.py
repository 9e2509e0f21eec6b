"""Holding out whole groups of videos: the validation split carved from a split's training videos.

Clips of one group (UCF-101's ``_gXX_``, an HMDB-51 source movie, a synthetic group) share actors
and scene; a split that put some on each side would let a model be judged on what it has all but
seen. So each class's *groups* are shuffled with a seeded generator and a fraction of them is held
out. The choice depends only on the seed, the fraction and the class's own video ids, never on the
model's seed or the process, so every stream, seed and torchrun process sees the same split.
"""

import dataclasses
import random
from collections.abc import Sequence

from twostream.data.splits import SplitLists, Video
from twostream.errors import DataError


def hold_out_groups(classes: Sequence[str], videos: Sequence[Video], fraction: float, seed: int
                    ) -> tuple[list[Video], list[Video]]:
    """``(kept, held_out)``: per class, ``round(fraction * groups)`` of its groups are held out.

    A class with two or more groups keeps at least one group on each side; a class with a single
    group is kept whole. A video without a group is a group of its own. Both lists keep the
    videos' order.
    """
    if not 0 < fraction < 1:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction}")

    def group(video: Video) -> tuple[int, str]:  # a group name (gXX) recurs in other classes
        return video.label, video.group or video.id

    held: set[tuple[int, str]] = set()
    for label, name in enumerate(classes):
        groups = sorted({group(v)[1] for v in videos if v.label == label})
        random.Random(f"{seed}/{name}").shuffle(groups)
        held.update((label, g) for g in groups[:min(max(round(fraction * len(groups)), 1), len(groups) - 1)])
    return [v for v in videos if group(v) not in held], [v for v in videos if group(v) in held]


def hold_out_validation(lists: SplitLists, fraction: float, seed: int) -> SplitLists:
    """The lists with ``fraction`` of each class's training groups moved to ``val`` (same type: a
    multi-task run's other datasets keep their lists, as they only train)."""
    train, val = hold_out_groups(lists.classes, lists.train, fraction, seed)
    return dataclasses.replace(lists, train=train, val=val)
