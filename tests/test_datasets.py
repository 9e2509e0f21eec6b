"""``dataset=folder``: any folder of class folders of videos, its classes and its deterministic split."""

import hashlib
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


def test_split_is_deterministic_per_seed_and_takes_about_the_fraction_of_each_class(tmp_path):
    make_files(tmp_path, [f"{c}/clip{i:02d}.mp4" for c in ("a", "b") for i in range(100)] + ["c/only.mp4"])
    classes, videos = scan_folder(tmp_path, EXTENSIONS)
    first = split_videos(classes, videos, test_fraction=0.3, seed=0)
    again = split_videos(classes, videos, test_fraction=0.3, seed=0)
    other = split_videos(classes, videos, test_fraction=0.3, seed=1)
    assert first == again
    assert {v.id for v in first.test} != {v.id for v in other.test}
    for label, name in enumerate(("a", "b")):  # each clip drawn on its own: binomial(100, 0.3), sd 4.6
        assert 30 - 14 <= sum(v.label == label for v in first.test) <= 30 + 14, name
    assert [v.id for v in first.train if v.label == 2] == ["c/only"]  # one clip: train only
    assert {v.id for v in first.train}.isdisjoint({v.id for v in first.test})
    assert len(first.train) + len(first.test) == len(videos)


def test_a_file_more_or_less_moves_no_other_video_between_sets(tmp_path):
    make_files(tmp_path, [f"{c}/clip{i:02d}.mp4" for c in ("a", "b") for i in range(12)])
    cfg = folder_dataset_cfg(tmp_path)
    before = load_split_lists(cfg)
    make_files(tmp_path, ["a/planted.mp4"])  # e.g. an unreadable file dropped in later
    after = load_split_lists(cfg)
    for subset in ("train", "val", "test"):
        ids = [v.id for v in getattr(after, subset) if v.id != "a/planted"]
        assert ids == [v.id for v in getattr(before, subset)], subset
    assert before.val and before.test


def test_ucf_style_groups_stay_on_one_side(tmp_path):
    make_files(tmp_path, [f"Jump/v_Jump_g{g:02d}_c{c:02d}.avi" for g in range(1, 6) for c in range(1, 4)])
    classes, videos = scan_folder(tmp_path, EXTENSIONS)
    lists = split_videos(classes, videos, test_fraction=0.4, seed=3)
    test_groups, train_groups = {v.group for v in lists.test}, {v.group for v in lists.train}
    assert test_groups.isdisjoint(train_groups) and test_groups | train_groups == {f"g{g:02d}" for g in range(1, 6)}
    # each group's own draw: the first 8 bytes of SHA-256("test/seed/class/group") as a fraction of 2**64
    drawn = {f"g{g:02d}" for g in range(1, 6)
             if int.from_bytes(hashlib.sha256(f"test/3/Jump/g{g:02d}".encode()).digest()[:8], "big") / 2**64 < 0.4}
    assert test_groups == drawn and len(lists.test) == 3 * len(drawn)


def test_config_uses_split_lists_when_the_folder_has_them(tmp_path):
    make_files(tmp_path, ["Jump/j1.avi", "Jump/j2.avi", "Run/r1.avi", "Run/r2.avi"])
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists/classInd.txt").write_text("1 Run\r\n2 Jump\r\n")
    (tmp_path / "lists/trainlist01.txt").write_text("Run/r1.avi 1\r\nJump/j2.avi 2\r\n")
    (tmp_path / "lists/testlist01.txt").write_text("Run/r2.avi\r\nJump/j1.avi\r\n")
    lists = load_split_lists(folder_dataset_cfg(tmp_path, f"dataset.splits_dir={tmp_path / 'lists'}",
                                                "dataset.validation=null"))  # one training video a class
    assert lists.classes == ["Run", "Jump"]  # classInd's order, not sorted
    assert [(v.id, v.label) for v in lists.train] == [("Run/r1", 0), ("Jump/j2", 1)]
    assert [v.id for v in lists.test] == ["Run/r2", "Jump/j1"]


def test_config_without_lists_makes_the_seeded_split(tmp_path):
    make_files(tmp_path, [f"{c}/{i}.mp4" for c in ("x", "y") for i in range(8)])
    options = ("dataset.test_fraction=0.5", "dataset.split_seed=2")
    lists = load_split_lists(folder_dataset_cfg(tmp_path, *options, "dataset.validation=null"))
    assert lists.classes == ["x", "y"]
    assert len(lists.train) + len(lists.test) == 16 and lists.val == []
    assert lists == split_videos(*scan_folder(tmp_path, EXTENSIONS), test_fraction=0.5, seed=2)
    # by default a validation split is held out of each class's training videos
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


def write_lists(folder: Path, classes: list[str], train: list[str], test: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, start=1)))
    (folder / "trainlist01.txt").write_text("".join(f"{t} {classes.index(t.split('/')[0]) + 1}\r\n" for t in train))
    (folder / "testlist01.txt").write_text("".join(f"{t}\r\n" for t in test))
    return folder


@pytest.mark.parametrize(("layout", "lists", "options", "message"), [
    (["Jump/a.avi", "Jump/b.avi"], None, (), "has 1 class (Jump): a classifier needs at least 2"),
    # one clip of Run: all training, none left for test
    (["Jump/a.avi", "Jump/b.avi", "Jump/c.avi", "Run/a.avi"], None, ("dataset.validation=null",),
     "class(es) Run have no test videos; add videos"),
    # two clips of Run: one for test, a single one left to train, nothing to validate on
    ([f"Jump/{i}.avi" for i in range(8)] + ["Run/a.avi", "Run/b.avi"], None, ("dataset.split_seed=1",),
     "class(es) Run have a single training video"),
    # lists whose classes differ: Run only in train, Walk only in test
    (["Jump/a.avi", "Jump/b.avi", "Run/a.avi", "Walk/a.avi"],
     (["Jump", "Run", "Walk"], ["Jump/a.avi", "Run/a.avi"], ["Jump/b.avi", "Walk/a.avi"]), ("dataset.validation=null",),
     "class(es) Walk have no training videos"),
    (["Jump/a.avi", "Jump/b.avi", "Run/a.avi", "Run/b.avi"],
     (["Jump", "Run"], ["Jump/a.avi", "Run/a.avi", "Run/b.avi"], ["Jump/b.avi"]), ("dataset.validation=null",),
     "class(es) Run have no test videos; add test videos"),
])
def test_lists_that_cannot_train_and_test_are_refused_naming_the_classes(tmp_path, layout, lists, options, message):
    make_files(tmp_path / "videos", layout)
    if lists is not None:
        write_lists(tmp_path / "videos" / "splits", *lists)
    with pytest.raises(ValueError) as error:
        load_split_lists(folder_dataset_cfg(tmp_path / "videos", *options))
    assert message in str(error.value), str(error.value)
    assert str(tmp_path / "videos") in str(error.value) and "\n" not in str(error.value)


def test_the_run_writes_its_split_and_reuses_it(tmp_path):
    from twostream.data.catalog import run_split_lists
    from twostream.rundir import RunDir

    make_files(tmp_path / "videos", [f"{c}/clip{i:02d}.mp4" for c in ("a", "b") for i in range(12)])
    cfg = folder_dataset_cfg(tmp_path / "videos")
    first = run_split_lists(cfg, RunDir(tmp_path / "run"))
    saved = tmp_path / "run" / "splits"
    test_lines = (saved / "testlist01.txt").read_text().splitlines()
    assert test_lines == [f"{v.id}.mp4" for v in first.test]
    assert (saved / "vallist01.txt").read_text().splitlines() == [f"{v.id}.mp4 {v.label + 1}" for v in first.val]
    assert (saved / "classInd.txt").read_text() == "1 a\n2 b\n"
    make_files(tmp_path / "videos", [f"{c}/late{i}.mp4" for c in ("a", "b") for i in range(6)])  # added later
    again = run_split_lists(cfg, RunDir(tmp_path / "run"))
    assert again == first  # the run's split, without the videos added since
    other = folder_dataset_cfg(tmp_path / "videos", "dataset.test_fraction=0.5")
    with pytest.raises(ValueError, match=r"drawn with other settings \(dataset.test_fraction: 0.3 -> 0.5\)"):
        run_split_lists(other, RunDir(tmp_path / "run"))


def test_lists_left_without_validation_videos_of_a_class_are_refused():
    from twostream.data.catalog import check_lists
    from twostream.data.splits import SplitLists, Video

    def video(name: str, label: int) -> Video:
        return Video(id=name, path=Path(f"/v/{name}.avi"), label=label, group=None)

    lists = SplitLists(["Jump", "Run"], [video("j1", 0), video("r1", 1)], [video("j2", 0), video("r2", 1)],
                       val=[video("r3", 1)])  # Jump's only validation video was left out (unreadable)
    with pytest.raises(ValueError, match="after leaving out: class\\(es\\) Jump have no validation videos"):
        check_lists(lists, "after leaving out", validation=None)
