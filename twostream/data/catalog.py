"""Turn the ``dataset`` config into the split's video lists, checking them before any work."""

from pathlib import Path
from typing import Any

from twostream.data.folder import scan_folder, split_videos
from twostream.data.splits import SplitLists, missing_videos, parse_hmdb51, parse_ucf101
from twostream.data.synthetic import generate_synthetic

PARSERS = {"ucf101": parse_ucf101, "hmdb51": parse_hmdb51}
FORMATS = (*PARSERS, "folder")


def _folder_lists(dataset_cfg: Any) -> SplitLists:
    """A folder of class folders: its own UCF-101-style lists when ``splits_dir`` has them, else a seeded split."""
    splits_dir = Path(dataset_cfg.splits_dir)
    if (splits_dir / "classInd.txt").is_file():
        return parse_ucf101(splits_dir, dataset_cfg.split, dataset_cfg.video_root)
    classes, videos = scan_folder(dataset_cfg.video_root, dataset_cfg.extensions)
    return split_videos(classes, videos, dataset_cfg.test_fraction, dataset_cfg.split_seed)


def load_split_lists(dataset_cfg: Any) -> SplitLists:
    """The train/test lists of ``dataset_cfg.split``; the synthetic dataset is generated first.

    Raises FileNotFoundError naming every listed video that is not on disk.
    """
    if dataset_cfg.get("generator") is not None:
        generate_synthetic(dataset_cfg.root, **dataset_cfg.generator)
    if dataset_cfg.format not in FORMATS:
        raise ValueError(f"unknown dataset.format {dataset_cfg.format!r}; available: {', '.join(FORMATS)}")
    if dataset_cfg.format == "folder":
        lists = _folder_lists(dataset_cfg)
    else:
        lists = PARSERS[dataset_cfg.format](dataset_cfg.splits_dir, dataset_cfg.split, dataset_cfg.video_root)
    missing = missing_videos(lists)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} video(s) listed in {Path(dataset_cfg.splits_dir)} split {dataset_cfg.split} "
            f"are not under dataset.video_root={dataset_cfg.video_root}:\n  "
            + "\n  ".join(str(p) for p in missing))
    return lists
