"""Turn the ``dataset`` config into the split's video lists, checking them before any work."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twostream.data.folder import scan_folder, split_videos
from twostream.data.splits import SplitLists, Video, missing_videos, parse_hmdb51, parse_ucf101
from twostream.data.synthetic import generate_synthetic
from twostream.data.validation import hold_out_validation
from twostream.errors import DataError, MissingDataError, shortened

PARSERS = {"ucf101": parse_ucf101, "hmdb51": parse_hmdb51}
FORMATS = (*PARSERS, "folder", "multitask")


@dataclass(frozen=True)
class MultiTaskLists(SplitLists):
    """Several datasets trained as the paper's multi-task net: one classifier head per dataset.

    ``classes``/``train``/``test`` are the evaluated dataset's (head 0: tested and fused);
    ``others`` are the other datasets, whose training videos train the shared trunk and their own head.
    """

    others: tuple[SplitLists, ...] = ()


@dataclass(frozen=True)
class MergedLists(SplitLists):
    """Several datasets' classes as one label set (``dataset.merge_labels``, the paper's "classes
    added" row): ``classes``/``train`` cover every dataset, the evaluated one's classes first;
    ``evaluated_classes`` are that dataset's, the only ones its validation and test videos are scored
    over (an added class trains the net but is never the answer for a video of the evaluated set).
    """

    evaluated_classes: list[str] = field(default_factory=list)


def scored_classes(lists: SplitLists) -> list[str]:
    """The classes that test and validation scores are over: the evaluated dataset's."""
    return lists.evaluated_classes if isinstance(lists, MergedLists) else lists.classes


def scored_train(lists: SplitLists) -> list[Video]:
    """The training videos of the evaluated dataset (those scored for fusion fitting and the report)."""
    count = len(scored_classes(lists))
    return [v for v in lists.train if v.label < count]


def task_lists(lists: SplitLists) -> list[SplitLists]:
    """Each task's lists in head order: the evaluated dataset first."""
    return [lists, *lists.others] if isinstance(lists, MultiTaskLists) else [lists]


def training_videos(lists: SplitLists) -> tuple[list[Video], list[int]]:
    """Every task's training videos, and each one's task (= its head)."""
    per_task = [task.train for task in task_lists(lists)]
    return [v for videos in per_task for v in videos], [i for i, videos in enumerate(per_task) for _ in videos]

def videos_to_extract(lists: SplitLists) -> list[Video]:
    """Every video a run reads: the evaluated dataset's train, validation and test videos, the others'
    train videos."""
    return lists.train + lists.val + lists.test + [v for task in task_lists(lists)[1:] for v in task.train]


def _folder_lists(dataset_cfg: Any) -> SplitLists:
    """A folder of class folders: its own UCF-101-style lists when ``splits_dir`` has them, else a seeded split."""
    splits_dir = Path(dataset_cfg.splits_dir)
    if (splits_dir / "classInd.txt").is_file():
        return parse_ucf101(splits_dir, dataset_cfg.split, dataset_cfg.video_root)
    classes, videos = scan_folder(dataset_cfg.video_root, dataset_cfg.extensions)
    return split_videos(classes, videos, dataset_cfg.test_fraction, dataset_cfg.split_seed)


def merged_labels(lists: MultiTaskLists) -> MergedLists:
    """One label set over every task's classes (the evaluated dataset's first, the others' after them):
    all tasks' training videos; the evaluated dataset's validation and test videos."""
    classes, train = list(lists.classes), list(lists.train)
    for task in lists.others:
        shared = set(classes) & set(task.classes)
        if shared:
            raise DataError(f"dataset.merge_labels: the datasets share class names ({', '.join(sorted(shared))}); "
                            "merging would make them one class")
        train += [dataclasses.replace(v, label=v.label + len(classes)) for v in task.train]
        classes += task.classes
    return MergedLists(classes, train, lists.test, lists.val, evaluated_classes=list(lists.classes))


def _multitask_lists(dataset_cfg: Any, listing_dir: Path | None) -> MultiTaskLists:
    """``dataset.tasks`` (name -> a dataset config) loaded, ``dataset.evaluate`` first."""
    tasks = dataset_cfg.tasks
    if dataset_cfg.evaluate not in tasks:
        raise DataError(f"dataset.evaluate={dataset_cfg.evaluate!r} is not one of dataset.tasks: {', '.join(tasks)}")
    names = [dataset_cfg.evaluate, *(n for n in tasks if n != dataset_cfg.evaluate)]
    first, *others = (_official_lists(tasks[n], listing_dir) for n in names)
    ids = [v.id for task in (first, *others) for v in task.train + task.test]
    if len(set(ids)) != len(ids):
        raise DataError(f"the datasets {', '.join(names)} share video ids; they would share cache entries")
    return MultiTaskLists(first.classes, first.train, first.test, others=tuple(others))


def load_split_lists(dataset_cfg: Any, listing_dir: Path | None = None) -> SplitLists:
    """The train/validation/test lists of ``dataset_cfg.split``; the synthetic dataset is generated first;
    a multi-task dataset's tasks merged into one label set with ``dataset_cfg.merge_labels``.

    With ``dataset_cfg.validation`` (``fraction``, ``seed``), that fraction of each class's training
    groups becomes the validation split (:mod:`twostream.data.validation`); without it ``val`` is empty.
    Raises MissingDataError naming the first listed videos that are not on disk (and, with
    ``listing_dir``, writing all of them to ``missing_videos_<dataset>.txt`` there).
    """
    lists = _official_lists(dataset_cfg, listing_dir)
    validation = dataset_cfg.get("validation")
    if validation is not None:
        lists = hold_out_validation(lists, validation.fraction, validation.seed)
    # merged after the hold-out, so that validation holds the evaluated dataset's videos only
    return merged_labels(lists) if dataset_cfg.get("merge_labels") else lists


def _official_lists(dataset_cfg: Any, listing_dir: Path | None) -> SplitLists:
    """The dataset's train/test lists as its split files (or the folder's seeded split) give them."""
    if dataset_cfg.format == "multitask":
        return _multitask_lists(dataset_cfg, listing_dir)
    if dataset_cfg.get("generator") is not None:
        generate_synthetic(dataset_cfg.root, **dataset_cfg.generator)
    if dataset_cfg.format not in FORMATS:
        raise DataError(f"unknown dataset.format {dataset_cfg.format!r}; available: {', '.join(FORMATS)}")
    if dataset_cfg.format == "folder":
        lists = _folder_lists(dataset_cfg)
    else:
        lists = PARSERS[dataset_cfg.format](dataset_cfg.splits_dir, dataset_cfg.split, dataset_cfg.video_root)
    missing = missing_videos(lists)
    if missing:
        listing = None if listing_dir is None else Path(listing_dir) / f"missing_videos_{dataset_cfg.name}.txt"
        raise MissingDataError(
            f"{len(missing)} video(s) listed in {Path(dataset_cfg.splits_dir)} split {dataset_cfg.split} "
            f"are not under dataset.video_root={dataset_cfg.video_root}: {shortened(missing, listing)}")
    return lists
