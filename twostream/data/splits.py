"""Parsers for the official UCF-101 and HMDB-51 train/test split lists, read exactly as distributed.

UCF-101 (``ucfTrainTestlist/``): ``classInd.txt`` ("1 ApplyEyeMakeup"), ``trainlistNN.txt``
("Class/v_Class_gXX_cYY.avi LABEL") and ``testlistNN.txt`` (path only). Our synthetic dataset writes
split 1 in the same format, so the same parser serves both.

HMDB-51 (``testTrainMulti_7030_splits/``): one ``<class>_test_split{1,2,3}.txt`` per class and split,
lines "<video>.avi <id>" with 1 = train, 2 = test, 0 = unused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from twostream.errors import DataError, MissingDataError

SPLITS = (1, 2, 3)

# UCF-101 clip names end in "_gXX_cYY": XX is the group (the same actors/scene), YY the clip in it.
_UCF_GROUP = re.compile(r"_(g\d+)_c\d+$")
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")
_HMDB_TRAIN, _HMDB_TEST, _HMDB_UNUSED = "1", "2", "0"
# HMDB-51 clip names are "<source movie>_<class>_<body>_<camera>_<people>_<view>_<quality>_<n>"
# (e.g. "April_09_brush_hair_u_nm_np1_ba_goo_0"); the official splits never put clips of one source
# movie on both sides (checked on all 3 splits), so the source movie is the clip's group.
_HMDB_META = r"_[a-z]+_[a-z]+_np\d+_[a-z]+_[a-z]+_\d+$"


@dataclass(frozen=True)
class Video:
    """One listed video.

    ``id`` is the path relative to the video root without extension, '/' separated
    (e.g. "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"); ``path`` is video_root / the listed relative path
    (with extension); ``label`` is the 0-based class index; ``group`` names the clips that share
    actors and scene, which must stay on one side of any split: the UCF-101 "gXX" part of the file
    name, the source movie of an HMDB-51 clip, None when the name says nothing (each clip alone).
    """

    id: str
    path: Path
    label: int
    group: str | None


@dataclass(frozen=True)
class SplitLists:
    """Classes (index = label) and the train and test videos of one split.

    ``val`` is the validation part held out of the official training videos
    (:func:`twostream.data.validation.hold_out_validation`): every choice made by looking at results
    is made on it, never on ``test``. Empty when the run has no validation split.
    """

    classes: list[str]
    train: list[Video]
    test: list[Video]
    val: list[Video] = field(default_factory=list)


def _check_split(split: int) -> None:
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise MissingDataError(f"split file not found: {path}")
    return path


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, whitespace-separated fields) for each non-blank line.

    Text mode's universal newlines turn the official CRLF ends into LF; ``split()`` drops any stray
    whitespace, such as the trailing space on every HMDB-51 line.
    """
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if fields:
                yield lineno, fields


def _video(video_root: Path, rel: str, label: int, group: str | None) -> Video:
    rel_path = PurePosixPath(rel)
    return Video(
        id=str(rel_path.with_suffix("")), path=video_root.joinpath(*rel_path.parts), label=label, group=group
    )


def _split_lists(classes: list[str], train: list[Video], test: list[Video]) -> SplitLists:
    """Build the result, refusing a video listed twice: in both train and test it would leak test data."""
    seen: set[str] = set()
    for video in train + test:  # (val is carved from train later, so it cannot repeat either)
        if video.id in seen:
            raise DataError(f"video {video.id!r} is listed more than once in this split")
        seen.add(video.id)
    return SplitLists(classes=classes, train=train, test=test)


def _read_class_ind(path: Path) -> list[str]:
    """Read classInd.txt ("1 ApplyEyeMakeup"); ids must run 1, 2, ... so that label = id - 1."""
    classes: list[str] = []
    for lineno, fields in _lines(_require_file(path)):
        where = f"{path.name} line {lineno}"
        if len(fields) != 2 or not fields[0].isdigit():
            raise DataError(f"{where}: expected '<id> <class>', got {' '.join(fields)!r}")
        class_id, name = int(fields[0]), fields[1]
        if class_id != len(classes) + 1:
            raise DataError(f"{where}: class id {class_id} out of sequence, expected {len(classes) + 1}")
        classes.append(name)
    if not classes:
        raise DataError(f"{path}: no classes listed")
    if len({name.lower() for name in classes}) != len(classes):
        raise DataError(f"{path}: class names repeat (compared case-insensitively)")
    return classes


def _read_ucf_list(path: Path, classes: list[str], video_root: Path, labelled: bool) -> list[Video]:
    """Read a trainlist (``labelled``: "Class/clip.avi LABEL") or a testlist ("Class/clip.avi").

    The folder is the class, looked up case-insensitively because the distribution mixes cases
    (folder HandstandPushups holds v_HandStandPushups_* clips). A trainlist label must agree with it.
    """
    by_name = {name.lower(): label for label, name in enumerate(classes)}
    videos = []
    for lineno, fields in _lines(_require_file(path)):
        where = f"{path.name} line {lineno}"
        if len(fields) != (2 if labelled else 1):
            expected = "'<Class>/<clip>.avi <label>'" if labelled else "'<Class>/<clip>.avi'"
            raise DataError(f"{where}: expected {expected}, got {' '.join(fields)!r}")
        rel = fields[0]
        folder = rel.split("/", 1)[0]
        if "/" not in rel or folder.lower() not in by_name:
            raise DataError(f"{where}: unknown class folder {folder!r} in {rel!r} (not in classInd.txt)")
        label = by_name[folder.lower()]
        if labelled:
            listed = fields[1]
            if not listed.isdigit() or int(listed) != label + 1:
                raise DataError(
                    f"{where}: label {listed} disagrees with folder {folder!r}, "
                    f"which is class {label + 1} ({classes[label]}) in classInd.txt"
                )
        match = _UCF_GROUP.search(PurePosixPath(rel).stem)
        videos.append(_video(video_root, rel, label, match.group(1) if match else None))
    return videos


def parse_ucf101(splits_dir: str | Path, split: int, video_root: str | Path) -> SplitLists:
    """Parse UCF-101-format split lists (``classInd.txt``, ``trainlistNN.txt``, ``testlistNN.txt``).

    Labels are classInd ids - 1. Raises DataError for a split outside 1..3 or a malformed line
    (message names file and line), MissingDataError naming the expected path of a missing file.
    """
    _check_split(split)
    splits_dir, video_root = Path(splits_dir), Path(video_root)
    classes = _read_class_ind(splits_dir / "classInd.txt")
    train = _read_ucf_list(splits_dir / f"trainlist{split:02d}.txt", classes, video_root, labelled=True)
    test = _read_ucf_list(splits_dir / f"testlist{split:02d}.txt", classes, video_root, labelled=False)
    return _split_lists(classes, train, test)


def _hmdb_classes(splits_dir: Path) -> list[str]:
    """Sorted class names from the file names of all splits, so labels do not depend on the split."""
    if not splits_dir.is_dir():
        raise MissingDataError(f"HMDB-51 splits folder not found: {splits_dir}")
    names = {m["cls"] for p in splits_dir.iterdir() if (m := _HMDB_FILE.match(p.name))}
    if not names:
        raise MissingDataError(f"no <class>_test_split<N>.txt files in {splits_dir}")
    return sorted(names)


def hmdb_source(clip: str, class_name: str) -> str | None:
    """The source movie of an HMDB-51 clip name (without extension); None if the name does not follow
    the dataset's naming scheme."""
    match = re.match(rf"^(?P<source>.+)_{re.escape(class_name)}{_HMDB_META}", clip)
    return match["source"] if match else None


def parse_hmdb51(splits_dir: str | Path, split: int, video_root: str | Path) -> SplitLists:
    """Parse the HMDB-51 ``<class>_test_split<N>.txt`` files of one split.

    Label = index of the class in the sorted class names; id 1 = train, 2 = test, 0 = unused (left out).
    Video path = video_root/<class>/<video>.avi; group = the clip's source movie (:func:`hmdb_source`).
    Raises DataError for a split outside 1..3 or a bad line (message names file and line),
    MissingDataError naming the path of a class's missing file.
    """
    _check_split(split)
    splits_dir, video_root = Path(splits_dir), Path(video_root)
    classes = _hmdb_classes(splits_dir)
    train: list[Video] = []
    test: list[Video] = []
    for label, name in enumerate(classes):
        path = _require_file(splits_dir / f"{name}_test_split{split}.txt")
        for lineno, fields in _lines(path):
            where = f"{path.name} line {lineno}"
            if len(fields) != 2:
                raise DataError(f"{where}: expected '<video>.avi <0|1|2>', got {' '.join(fields)!r}")
            clip, use = fields
            if use not in (_HMDB_TRAIN, _HMDB_TEST, _HMDB_UNUSED):
                raise DataError(f"{where}: id must be 0 (unused), 1 (train) or 2 (test), got {use!r}")
            if use != _HMDB_UNUSED:
                (train if use == _HMDB_TRAIN else test).append(
                    _video(video_root, f"{name}/{clip}", label, hmdb_source(PurePosixPath(clip).stem, name))
                )
    return _split_lists(classes, train, test)


def missing_videos(lists: SplitLists) -> list[Path]:
    """Every listed video (train, validation, then test, in list order) that is not a file on disk."""
    return [video.path for video in lists.train + lists.val + lists.test if not video.path.is_file()]


def write_split_lists(lists: SplitLists, folder: Path, split: int) -> None:
    """Write ``lists`` UCF-101-style into ``folder``: ``classInd.txt``, ``trainlistNN.txt`` and
    ``vallistNN.txt`` ("Class/clip.ext LABEL", labels 1-based) and ``testlistNN.txt`` ("Class/clip.ext");
    :func:`read_split_lists` reads them back. Paths are the video ids (relative to the video root)
    with the file's extension."""
    folder.mkdir(parents=True, exist_ok=True)

    def rel(video: Video) -> str:
        return f"{video.id}{video.path.suffix}"

    files = {"classInd.txt": [f"{label} {name}" for label, name in enumerate(lists.classes, start=1)],
             f"trainlist{split:02d}.txt": [f"{rel(v)} {v.label + 1}" for v in lists.train],
             f"vallist{split:02d}.txt": [f"{rel(v)} {v.label + 1}" for v in lists.val],
             f"testlist{split:02d}.txt": [rel(v) for v in lists.test]}
    for name, lines in files.items():
        (folder / name).write_text("".join(f"{line}\n" for line in lines))


def read_split_lists(folder: Path, split: int, video_root: str | Path) -> SplitLists:
    """The lists :func:`write_split_lists` wrote (train, validation and test; groups from UCF-style names)."""
    lists = parse_ucf101(folder, split, video_root)
    val = _read_ucf_list(folder / f"vallist{split:02d}.txt", lists.classes, Path(video_root), labelled=True)
    return SplitLists(lists.classes, lists.train, lists.test, val)
