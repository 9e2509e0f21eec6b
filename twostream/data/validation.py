"""Holding out whole groups of videos: the validation split carved from a split's training videos.

Clips of one group (UCF-101's ``_gXX_``, an HMDB-51 source movie, a synthetic group) share actors
and scene; a split that put some on each side would let a model be judged on what it has all but
seen. So each class's *groups* are shuffled with a seeded generator and a fraction of them is held
out. The choice depends only on the seed, the fraction and the class's own video ids, never on the
model's seed or the process, so every stream, seed and torchrun process sees the same split.

Two draws. The official lists' validation holds out exactly ``round(fraction * groups)`` groups of a
class (a shuffle). A folder of one's own videos (``per_group``) draws each group on its own, from a
hash of the seed, the class and the group's name: a file added, removed or unreadable never moves
another group between sets (the count held out is then about, not exactly, the fraction).
"""

import dataclasses
import hashlib
import random
from collections.abc import Sequence

from twostream.data.splits import SplitLists, Video
from twostream.errors import DataError


def hold_out_groups(classes: Sequence[str], videos: Sequence[Video], fraction: float, seed: int,
                    per_group: str | None = None) -> tuple[list[Video], list[Video]]:
    """``(kept, held_out)``: per class, ``round(fraction * groups)`` of its groups are held out, or with
    ``per_group`` (the draw's name: "test", "validation") each group whose own draw
    (:func:`group_draw`) is below ``fraction``; draws of other names are independent.

    A class with two or more groups keeps at least one group on each side (with ``per_group``, by
    moving the group whose draw is nearest to the other side); a class with a single group is kept
    whole. A video without a group is a group of its own. Both lists keep the videos' order.
    """
    if not 0 < fraction < 1:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction}")

    def group(video: Video) -> tuple[int, str]:  # a group name (gXX) recurs in other classes
        return video.label, video.group or video.id

    held: set[tuple[int, str]] = set()
    for label, name in enumerate(classes):
        groups = sorted({group(v)[1] for v in videos if v.label == label})
        if len(groups) < 2:
            continue
        if per_group:
            groups.sort(key=lambda g: group_draw(per_group, seed, name, g))
            count = sum(group_draw(per_group, seed, name, g) < fraction for g in groups)
        else:
            random.Random(f"{seed}/{name}").shuffle(groups)
            count = round(fraction * len(groups))
        held.update((label, g) for g in groups[:min(max(count, 1), len(groups) - 1)])
    return [v for v in videos if group(v) not in held], [v for v in videos if group(v) in held]


def group_draw(draw: str, seed: int, class_name: str, group: str) -> float:
    """A number in [0, 1) from the draw's name, the seed, the class and the group's name alone (the same
    in every process and Python version: a SHA-256 digest, not ``hash()``)."""
    digest = hashlib.sha256(f"{draw}/{seed}/{class_name}/{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hold_out_validation(lists: SplitLists, fraction: float, seed: int, per_group: bool = False) -> SplitLists:
    """The lists with ``fraction`` of each class's training groups moved to ``val`` (same type: a
    multi-task run's other datasets keep their lists, as they only train); ``per_group``: see
    :func:`hold_out_groups`."""
    train, val = hold_out_groups(lists.classes, lists.train, fraction, seed, "validation" if per_group else None)
    return dataclasses.replace(lists, train=train, val=val)
