"""``dataset=folder``: any folder of class folders of videos, its classes and its deterministic split."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from twostream.data.catalog import load_split_lists
from twostream.data.folder import scan_folder, split_videos

CONF = Path(__file__).resolve().parents[1] / "conf"
EXTENSIONS = [".avi", ".mp4", ".mkv", ".webm", ".mov"]


def folder_dataset_cfg(root: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=["dataset=folder", f"dataset.root={root}", *overrides],
                       return_hydra_config=False).dataset


def make_files(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not decoded here")


def test_classes_are_sorted_folders_and_only_video_files_count(tmp_path):
    make_files(tmp_path, ["walk/a.MP4", "walk/b.webm", "walk/notes.txt", "jump/c.Avi", "jump/d.mkv",
                          "jump/e.MOV", ".hidden/x.avi", "readme.avi"])
    classes, videos = scan_folder(tmp_path, EXTENSIONS)
    assert classes == ["jump", "walk"]
    assert [(v.id, v.label) for v in videos] == [("jump/c", 0), ("jump/d", 0), ("jump/e", 0),
                                                 ("walk/a", 1), ("walk/b", 1)]
    assert videos[0].path == tmp_path / "jump" / "c.Avi"


def test_split_is_deterministic_per_seed_and_takes_the_fraction_of_each_class(tmp_path):
    make_files(tmp_path, [f"{c}/clip{i:02d}.mp4" for c in ("a", "b") for i in range(10)] + ["c/only.mp4"])
    classes, videos = scan_folder(tmp_path, EXTENSIONS)
    first = split_videos(classes, videos, test_fraction=0.3, seed=0)
    again = split_videos(classes, videos, test_fraction=0.3, seed=0)
    other = split_videos(classes, videos, test_fraction=0.3, seed=1)
    assert first == again
    assert {v.id for v in first.test} != {v.id for v in other.test}
    for label, name in enumerate(("a", "b")):
        assert sum(v.label == label for v in first.test) == 3, name
        assert sum(v.label == label for v in first.train) == 7, name
    assert [v.id for v in first.train if v.label == 2] == ["c/only"]  # one clip: train only
    assert {v.id for v in first.train}.isdisjoint({v.id for v in first.test})
    assert len(first.train) + len(first.test) == len(videos)


def test_ucf_style_groups_stay_on_one_side(tmp_path):
    make_files(tmp_path, [f"Jump/v_Jump_g{g:02d}_c{c:02d}.avi" for g in range(1, 6) for c in range(1, 4)])
    classes, videos = scan_folder(tmp_path, EXTENSIONS)
    lists = split_videos(classes, videos, test_fraction=0.4, seed=3)
    test_groups, train_groups = {v.group for v in lists.test}, {v.group for v in lists.train}
    assert len(test_groups) == 2 and len(train_groups) == 3 and test_groups.isdisjoint(train_groups)
    assert len(lists.test) == 6


def test_config_uses_split_lists_when_the_folder_has_them(tmp_path):
    make_files(tmp_path, ["Jump/j1.avi", "Jump/j2.avi", "Run/r1.avi", "Run/r2.avi"])
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists/classInd.txt").write_text("1 Run\r\n2 Jump\r\n")
    (tmp_path / "lists/trainlist01.txt").write_text("Run/r1.avi 1\r\nJump/j2.avi 2\r\n")
    (tmp_path / "lists/testlist01.txt").write_text("Run/r2.avi\r\nJump/j1.avi\r\n")
    lists = load_split_lists(folder_dataset_cfg(tmp_path, f"dataset.splits_dir={tmp_path / 'lists'}"))
    assert lists.classes == ["Run", "Jump"]  # classInd's order, not sorted
    assert [(v.id, v.label) for v in lists.train] == [("Run/r1", 0), ("Jump/j2", 1)]
    assert [v.id for v in lists.test] == ["Run/r2", "Jump/j1"]


def test_config_without_lists_makes_the_seeded_split(tmp_path):
    make_files(tmp_path, [f"{c}/{i}.mp4" for c in ("x", "y") for i in range(4)])
    options = ("dataset.test_fraction=0.5", "dataset.split_seed=2")
    lists = load_split_lists(folder_dataset_cfg(tmp_path, *options, "dataset.validation=null"))
    assert lists.classes == ["x", "y"]
    assert len(lists.train) == len(lists.test) == 4 and lists.val == []
    assert lists == split_videos(*scan_folder(tmp_path, EXTENSIONS), test_fraction=0.5, seed=2)
    # by default a validation split is held out of the training videos: one of each class's two
    validated = load_split_lists(folder_dataset_cfg(tmp_path, *options))
    assert validated.test == lists.test and sorted(v.label for v in validated.val) == [0, 1]
    assert sorted(v.id for v in validated.train + validated.val) == sorted(v.id for v in lists.train)


@pytest.mark.parametrize(("layout", "message"), [
    (None, "is not a folder"),
    ([], "has no class sub-folders"),
    (["loose.avi"], "has no class sub-folders"),
    (["Jump/a.avi", "Run/notes.txt"], "Run holds no video"),
    (["Jump/a.avi", "Jump/a.mp4"], "differ only in their extension (a)"),
])
def test_bad_folders_are_refused_with_the_reason(tmp_path, layout, message):
    root = tmp_path / "videos"
    if layout is not None:
        root.mkdir()
        make_files(root, layout)
    with pytest.raises((FileNotFoundError, ValueError)) as error:
        load_split_lists(folder_dataset_cfg(root))
    assert message in str(error.value) and str(root) in str(error.value)


def test_test_fraction_outside_zero_one_is_refused(tmp_path):
    make_files(tmp_path, ["a/1.avi", "a/2.avi"])
    with pytest.raises(ValueError, match="test_fraction must be between 0 and 1"):
        split_videos(*scan_folder(tmp_path, EXTENSIONS), test_fraction=1.0, seed=0)
