"""Any folder of class sub-folders of videos as a dataset (``dataset=folder``).

    root/
      Jump/clip1.mp4, clip2.avi, ...
      Run/...

Classes are the sorted sub-folder names (label = index). Without split lists the train/test split is
made here, deterministically from a seed: per class, about a ``test_fraction`` of its *groups* goes to
test, each group drawn from its own name (so a file added or left out never moves another).
A clip named in the UCF-101 style ("..._gXX_cYY") belongs to group gXX (clips of one group share
actors and scene, so splitting them would leak test data); any other clip is a group of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from twostream.data.splits import _UCF_GROUP, SplitLists, Video
from twostream.data.validation import hold_out_groups
from twostream.errors import DataError, MissingDataError


def _class_videos(folder: Path, extensions: set[str]) -> list[Path]:
    """The folder's video files (extension compared case-insensitively), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def scan_folder(root: str | Path, extensions: Sequence[str]) -> tuple[list[str], list[Video]]:
    """The classes (sorted sub-folder names) and every video under them, with labels.

    Raises MissingDataError when ``root`` is not a folder, DataError when it has no class folders,
    a class folder holds no video, or two files of a class differ only in their extension.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"dataset.root={root} is not a folder; point it at a folder of class sub-folders")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"dataset.root={root} has no class sub-folders; expected root/<class>/<video> "
                         f"with video extensions {sorted(exts)}")
    videos: list[Video] = []
    for label, name in enumerate(classes):
        files = _class_videos(root / name, exts)
        if not files:
            raise DataError(f"class folder {root / name} holds no video with an extension in {sorted(exts)}; "
                             "remove the folder or add its extension to dataset.extensions")
        stems = [p.stem for p in files]
        clashes = sorted({s for s in stems if stems.count(s) > 1})
        if clashes:
            raise DataError(f"{root / name}: files differ only in their extension ({', '.join(clashes)}); "
                             "keep one of each, as the video id is the name without extension")
        for path in files:
            match = _UCF_GROUP.search(path.stem)
            videos.append(Video(id=f"{name}/{path.stem}", path=path, label=label,
                                 group=match.group(1) if match else None))
    return classes, videos


def split_videos(classes: Sequence[str], videos: Sequence[Video], test_fraction: float, seed: int
                 ) -> SplitLists:
    """A deterministic train/test split: per class, each group whose draw from the seed, the class and
    its own name is below ``test_fraction`` is test (:func:`~twostream.data.validation.hold_out_groups`
    with ``per_group``), so one file more or less moves no other video.

    A class with two or more groups keeps at least one on each side; a class with one group is all
    train (:func:`~twostream.data.catalog.check_lists` refuses it before any work).
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"dataset.test_fraction must be between 0 and 1, got {test_fraction}")
    train, test = hold_out_groups(classes, videos, test_fraction, seed, per_group="test")
    return SplitLists(classes=list(classes), train=train, test=test)
