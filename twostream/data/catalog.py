"""Turn the ``dataset`` config into the split's video lists, checking them before any work."""

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from twostream.data.folder import scan_folder, split_videos
from twostream.data.splits import (
    SplitLists,
    Video,
    missing_videos,
    parse_hmdb51,
    parse_ucf101,
    read_split_lists,
    write_split_lists,
)
from twostream.data.synthetic import generate_synthetic
from twostream.data.validation import hold_out_validation
from twostream.errors import DataError, MissingDataError, shortened
from twostream.rundir import RunDir

log = logging.getLogger(__name__)

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


def _multitask_lists(dataset_cfg: Any, run_dir: RunDir | None) -> MultiTaskLists:
    """``dataset.tasks`` (name -> a dataset config) loaded, ``dataset.evaluate`` first."""
    tasks = dataset_cfg.tasks
    if dataset_cfg.evaluate not in tasks:
        raise DataError(f"dataset.evaluate={dataset_cfg.evaluate!r} is not one of dataset.tasks: {', '.join(tasks)}")
    names = [dataset_cfg.evaluate, *(n for n in tasks if n != dataset_cfg.evaluate)]
    first, *others = (_official_lists(tasks[n], run_dir) for n in names)
    ids = [v.id for task in (first, *others) for v in task.train + task.test]
    if len(set(ids)) != len(ids):
        raise DataError(f"the datasets {', '.join(names)} share video ids; they would share cache entries")
    return MultiTaskLists(first.classes, first.train, first.test, others=tuple(others))


def load_split_lists(dataset_cfg: Any, run_dir: RunDir | None = None) -> SplitLists:
    """The train/validation/test lists of ``dataset_cfg.split``; the synthetic dataset is generated first;
    a multi-task dataset's tasks merged into one label set with ``dataset_cfg.merge_labels``.

    With ``dataset_cfg.validation`` (``fraction``, ``seed``), that fraction of each class's training
    groups becomes the validation split (:mod:`twostream.data.validation`; drawn group by group from
    their names for a folder of one's own videos); without it ``val`` is empty.
    Raises MissingDataError naming the first listed videos that are not on disk (and, with
    ``run_dir``, writing all of them to its ``missing_videos_<dataset>.txt``), DataError when
    the lists cannot train and test a classifier (:func:`check_lists`).
    """
    lists = _official_lists(dataset_cfg, run_dir)
    validation = dataset_cfg.get("validation")
    check_lists(lists, _source(dataset_cfg), validation, drawn=_drawn_here(dataset_cfg))
    if validation is not None:
        lists = hold_out_validation(lists, validation.fraction, validation.seed,
                                    per_group=dataset_cfg.format == "folder")
    # merged after the hold-out, so that validation holds the evaluated dataset's videos only
    return merged_labels(lists) if dataset_cfg.get("merge_labels") else lists


def _source(dataset_cfg: Any) -> str:
    """Where the lists of the evaluated dataset come from, as a user would look for it."""
    if dataset_cfg.format == "multitask":
        return _source(dataset_cfg.tasks[dataset_cfg.evaluate])
    if _drawn_here(dataset_cfg):
        return (f"dataset.root={dataset_cfg.video_root} (split drawn with "
                f"dataset.test_fraction={dataset_cfg.test_fraction})")
    return f"the split {dataset_cfg.split} lists in {dataset_cfg.splits_dir}"


def _drawn_here(dataset_cfg: Any) -> bool:
    """Whether the train/test split is drawn here (a folder without lists of its own)."""
    return dataset_cfg.format == "folder" and not (Path(dataset_cfg.splits_dir) / "classInd.txt").is_file()


def check_lists(lists: SplitLists, source: str, validation: Any, drawn: bool = False) -> None:
    """Refuse, before any work, lists that cannot train and test a classifier: fewer than two classes,
    a class with no training or no test videos (classes that differ between the train and test
    lists), or, with a ``validation`` split, a class with too few training groups to hold one out.
    ``source`` names where the lists come from; ``drawn``: the test split was drawn here."""
    if len(lists.classes) < 2:
        raise DataError(f"{source} has {len(lists.classes)} class ({', '.join(lists.classes)}): a classifier "
                        "needs at least 2; add a folder of videos of another class")
    no_train = _classes_without(lists.classes, lists.train)
    if no_train:
        raise DataError(f"{source}: class(es) {', '.join(no_train)} have no training videos (the train and "
                        "test lists must hold the same classes); add training videos of them or remove them")
    no_test = _classes_without(lists.classes, lists.test)
    if no_test:
        fix = ("add videos (a class needs 2 or more, or 2 or more _gXX_ groups, to have some on each side) "
               "or raise dataset.test_fraction" if drawn else "add test videos of them or remove them")
        raise DataError(f"{source}: class(es) {', '.join(no_test)} have no test videos; {fix}")
    if lists.val:  # held out already (the videos a run can use, after some were left out)
        no_val = _classes_without(lists.classes, lists.val)
        if no_val:
            raise DataError(f"{source}: class(es) {', '.join(no_val)} have no validation videos; add videos of "
                            "them, or set dataset.validation=null (no validation split)")
        return
    if validation is None:
        return
    few = [c for label, c in enumerate(lists.classes)
           if len({v.group or v.id for v in lists.train if v.label == label}) < 2]
    if few:
        raise DataError(f"{source}: class(es) {', '.join(few)} have a single training video (or _gXX_ group), "
                        f"too few to hold one out for dataset.validation.fraction={validation.fraction}; add "
                        "training videos, or set dataset.validation=null (no validation split)")


def _classes_without(classes: Sequence[str], videos: Sequence[Video]) -> list[str]:
    """The classes no video of ``videos`` belongs to (one pass over the videos: UCF-101 has 13,320)."""
    present = {v.label for v in videos}
    return [c for label, c in enumerate(classes) if label not in present]


_SPLIT_KEYS = ("name", "format", "video_root", "split", "test_fraction", "split_seed", "validation", "generator")


def run_split_lists(dataset_cfg: Any, run_dir: RunDir) -> SplitLists:
    """The run's lists: :func:`load_split_lists`, written UCF-style into the run folder's ``splits`` by the
    first run and read back from there by every later one (another stage alone, a resumed run), so
    that videos added to the folder later never change a run's split.

    A multi-task run's lists are not written (its other datasets only train, on their official lists).
    Raises DataError when the saved split was drawn with other split settings.
    """
    lists = load_split_lists(dataset_cfg, run_dir)
    if dataset_cfg.format == "multitask":
        return lists
    folder = run_dir.splits
    node = OmegaConf.to_container(dataset_cfg, resolve=True)
    settings = {k: node[k] for k in _SPLIT_KEYS if k in node}
    record = run_dir.split_settings
    if not record.is_file():
        write_split_lists(lists, folder, dataset_cfg.split)
        record.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")  # last: the lists are whole
        return lists
    saved_settings = json.loads(record.read_text())
    if saved_settings != settings:
        changed = ", ".join(f"dataset.{k}: {saved_settings.get(k)!r} -> {settings.get(k)!r}"
                            for k in sorted(saved_settings.keys() | settings.keys())
                            if saved_settings.get(k) != settings.get(k))
        raise DataError(f"{folder} holds this run folder's split, drawn with other settings ({changed}); "
                        "give the run another name= or delete that folder")
    saved = read_split_lists(folder, dataset_cfg.split, dataset_cfg.video_root)
    missing = missing_videos(saved)
    if missing:
        raise MissingDataError(f"{len(missing)} video(s) of the split saved in {folder} are no longer under "
                               f"dataset.video_root={dataset_cfg.video_root}: {shortened(missing, None)}")
    new = {v.id for v in lists.train + lists.val + lists.test} - {v.id for v in saved.train + saved.val + saved.test}
    if new:
        log.warning("%d video(s) not in this run's split (saved in %s) are left out: %s; give the run another "
                    "name= to draw a split with them", len(new), folder, shortened(sorted(new), None, shown=3))
    return saved


def _official_lists(dataset_cfg: Any, run_dir: RunDir | None) -> SplitLists:
    """The dataset's train/test lists as its split files (or the folder's seeded split) give them."""
    if dataset_cfg.format == "multitask":
        return _multitask_lists(dataset_cfg, run_dir)
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
        listing = None if run_dir is None else run_dir.missing_videos(dataset_cfg.name)
        raise MissingDataError(
            f"{len(missing)} video(s) listed in {Path(dataset_cfg.splits_dir)} split {dataset_cfg.split} "
            f"are not under dataset.video_root={dataset_cfg.video_root}: {shortened(missing, listing)}")
    return lists
