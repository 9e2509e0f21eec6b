"""Split-list parsers against the official UCF-101 / HMDB-51 lists, plus hand-written malformed lists."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from twostream.data.splits import SplitLists, Video, missing_videos, parse_hmdb51, parse_ucf101

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
UCF_SPLITS = SHARED_DATA / "ucf101_splits"
HMDB_SPLITS = SHARED_DATA / "hmdb51_splits"
VIDEO_ROOT = Path("/videos")  # never touched: parsing does not look at the videos

# Counts verified against the official distribution (see ../shared/data/SOURCES.md).
UCF_COUNTS = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"../shared/data not present: {path} missing")
    return path


@pytest.fixture(scope="module")
def ucf() -> dict[int, SplitLists]:
    splits_dir = _need(UCF_SPLITS)
    return {split: parse_ucf101(splits_dir, split, VIDEO_ROOT) for split in UCF_COUNTS}


@pytest.fixture(scope="module")
def hmdb() -> dict[int, SplitLists]:
    splits_dir = _need(HMDB_SPLITS)
    return {split: parse_hmdb51(splits_dir, split, VIDEO_ROOT) for split in (1, 2, 3)}


def _write(path: Path, lines: list[str], newline: str = "\r\n") -> Path:
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


# --- UCF-101, real lists ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", sorted(UCF_COUNTS))
def test_ucf_counts(ucf: dict[int, SplitLists], split: int) -> None:
    lists = ucf[split]
    assert len(lists.classes) == 101
    assert lists.classes[0] == "ApplyEyeMakeup"
    assert (len(lists.train), len(lists.test)) == UCF_COUNTS[split]
    assert {v.label for v in lists.train} == {v.label for v in lists.test} == set(range(101))


def test_ucf_video_fields(ucf: dict[int, SplitLists]) -> None:
    first = ucf[1].train[0]
    assert first == Video(
        id="ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01",
        path=VIDEO_ROOT / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi",
        label=0,
        group="g08",
    )
    assert ucf[1].test[0].id == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"


def test_ucf_handstand_pushups_quirk(ucf: dict[int, SplitLists]) -> None:
    lists = ucf[1]
    label = lists.classes.index("HandstandPushups")
    assert label == 36  # classInd id 37
    clips = [v for v in lists.train if v.path.name.startswith("v_HandStandPushups_")]
    assert len(clips) == 100
    assert {v.label for v in clips} == {label}
    assert all(v.id.startswith("HandstandPushups/") for v in clips)


def test_ucf_test_labels_follow_class_ind(ucf: dict[int, SplitLists]) -> None:
    class_ind = {}
    for line in (UCF_SPLITS / "classInd.txt").read_text().splitlines():
        class_id, name = line.split()
        class_ind[name] = int(class_id)
    for lists in ucf.values():
        for video in lists.test:
            assert video.label == class_ind[video.id.split("/")[0]] - 1


def test_ucf_groups_disjoint_split1(ucf: dict[int, SplitLists]) -> None:
    # UCF-101 holds out whole groups (same actors/scene), so no group of a class is in both train and test.
    groups: dict[str, defaultdict[int, set[str]]] = {"train": defaultdict(set), "test": defaultdict(set)}
    for part in groups:
        for video in getattr(ucf[1], part):
            assert video.group is not None
            groups[part][video.label].add(video.group)
    for label in range(101):
        assert groups["train"][label].isdisjoint(groups["test"][label]), ucf[1].classes[label]


# --- HMDB-51, real lists ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb_counts(hmdb: dict[int, SplitLists], split: int) -> None:
    lists = hmdb[split]
    assert len(lists.classes) == 51
    assert lists.classes == sorted(lists.classes)
    assert (len(lists.train), len(lists.test)) == (3570, 1530)
    assert Counter(v.label for v in lists.train) == dict.fromkeys(range(51), 70)
    assert Counter(v.label for v in lists.test) == dict.fromkeys(range(51), 30)
    # the group is the clip's source movie, and the official split keeps each movie on one side
    assert all(v.group and v.id.split("/")[1].startswith(v.group + "_") for v in lists.train + lists.test)
    for label in range(51):
        assert ({v.group for v in lists.train if v.label == label}
                .isdisjoint({v.group for v in lists.test if v.label == label})), lists.classes[label]
    assert len({v.group for v in lists.train}) > 500  # many movies, not one group per class


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb_ids_map_to_parts(hmdb: dict[int, SplitLists], split: int) -> None:
    lists = hmdb[split]
    expected: dict[str, set[str]] = {"1": set(), "2": set(), "0": set()}
    for name in lists.classes:
        for line in (HMDB_SPLITS / f"{name}_test_split{split}.txt").read_text().splitlines():
            if line.strip():
                clip, use = line.split()
                expected[use].add(f"{name}/{clip.removesuffix('.avi')}")
    assert {v.id for v in lists.train} == expected["1"]
    assert {v.id for v in lists.test} == expected["2"]
    assert len(expected["0"]) == 1666  # unused videos exist and are left out of both
    for video in lists.train + lists.test:
        class_name, clip = video.id.split("/")
        assert video.label == lists.classes.index(class_name)
        assert video.path == VIDEO_ROOT / class_name / f"{clip}.avi"


# --- hand-written lists ----------------------------------------------------------------------------


@pytest.fixture
def tiny_ucf(tmp_path: Path) -> Path:
    """A 2-class UCF-format split 1 with LF ends and blank lines, the way the synthetic dataset may write it."""
    splits = tmp_path / "splits"
    splits.mkdir()
    _write(splits / "classInd.txt", ["1 Alpha", "2 beta_two", ""], newline="\n")
    _write(
        splits / "trainlist01.txt",
        ["Alpha/v_Alpha_g01_c01.avi 1", "", "beta_two/v_beta_two_g01_c01.avi 2"],
        newline="\n",
    )
    _write(
        splits / "testlist01.txt",
        ["Alpha/v_Alpha_g02_c01.avi", "beta_two/v_beta_two_g02_c01.avi"],
        newline="\n",
    )
    return splits


def test_tiny_lists_lf_and_blank_lines(tiny_ucf: Path, tmp_path: Path) -> None:
    lists = parse_ucf101(tiny_ucf, 1, tmp_path / "videos")
    assert lists.classes == ["Alpha", "beta_two"]
    assert [(v.id, v.label, v.group) for v in lists.train] == [
        ("Alpha/v_Alpha_g01_c01", 0, "g01"),
        ("beta_two/v_beta_two_g01_c01", 1, "g01"),
    ]
    assert [v.label for v in lists.test] == [0, 1]


def test_missing_videos_returns_all_missing(tiny_ucf: Path, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    lists = parse_ucf101(tiny_ucf, 1, root)
    everything = [v.path for v in lists.train + lists.test]
    assert missing_videos(lists) == everything  # nothing on disk yet: all four, not just the first
    for path in everything[:-1]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert missing_videos(lists) == [root / "beta_two" / "v_beta_two_g02_c01.avi"]


def test_ucf_wrong_train_label(tiny_ucf: Path) -> None:
    _write(tiny_ucf / "trainlist01.txt", ["Alpha/v_Alpha_g01_c01.avi 1", "beta_two/v_beta_two_g01_c01.avi 1"])
    with pytest.raises(
        ValueError, match=r"trainlist01\.txt line 2: label 1 disagrees with folder 'beta_two'"
    ) as e:
        parse_ucf101(tiny_ucf, 1, "/videos")
    assert "class 2" in str(e.value)


def test_ucf_unknown_class(tiny_ucf: Path) -> None:
    _write(tiny_ucf / "testlist01.txt", ["Alpha/v_Alpha_g02_c01.avi", "Gamma/v_Gamma_g02_c01.avi"])
    with pytest.raises(ValueError, match=r"testlist01\.txt line 2: unknown class folder 'Gamma'"):
        parse_ucf101(tiny_ucf, 1, "/videos")


def test_ucf_missing_split_file(tiny_ucf: Path) -> None:
    # The synthetic dataset writes split 1 only: asking for split 2 must name the file it looked for.
    with pytest.raises(FileNotFoundError, match=r"trainlist02\.txt"):
        parse_ucf101(tiny_ucf, 2, "/videos")
    (tiny_ucf / "testlist01.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"testlist01\.txt"):
        parse_ucf101(tiny_ucf, 1, "/videos")


@pytest.mark.parametrize("parse", [parse_ucf101, parse_hmdb51])
def test_split_out_of_range(tiny_ucf: Path, parse) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        parse(tiny_ucf, 4, "/videos")


def test_hmdb_bad_id(tmp_path: Path) -> None:
    _write(tmp_path / "wave_test_split1.txt", ["a.avi 1 ", "b.avi 3 "], newline="\n")
    with pytest.raises(ValueError, match=r"wave_test_split1\.txt line 2: id must be"):
        parse_hmdb51(tmp_path, 1, "/videos")


def test_hmdb_tiny_and_missing_class_file(tmp_path: Path) -> None:
    _write(tmp_path / "wave_test_split1.txt", ["a.avi 1 ", "b.avi 2 ", "c.avi 0 "], newline="\n")
    _write(tmp_path / "clap_test_split1.txt", ["d.avi 2 "], newline="\n")
    lists = parse_hmdb51(tmp_path, 1, tmp_path / "v")
    assert lists.classes == ["clap", "wave"]
    assert lists.train == [Video("wave/a", tmp_path / "v" / "wave" / "a.avi", 1, None)]
    assert [v.id for v in lists.test] == ["clap/d", "wave/b"]
    # A class with split 1 but not split 2 must not silently shift the labels of split 2.
    _write(tmp_path / "wave_test_split2.txt", ["a.avi 2 "], newline="\n")
    with pytest.raises(FileNotFoundError, match=r"clap_test_split2\.txt"):
        parse_hmdb51(tmp_path, 2, "/videos")
