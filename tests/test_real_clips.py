"""The real clips of ../shared/data/clips, laid out as a tiny UCF-101, through the whole command line.

The three clips differ in size (320x240, 340x256), frame rate (25, 30, 28 fps), container (AVI, MP4)
and length (164, 300, 280 frames); each is used under two UCF-style names (one train, one test).
"""

import json
from pathlib import Path

import cv2
import pytest
import torch
import zarr
from conftest import assert_results_match_score_files, twostream

from twostream.cache.store import FlowCache

CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "clips"
SHORT_SIDE = 64
# (class, clip file) per group: g01 is listed for training, g02 for testing.
LAYOUT = {
    "ApplyEyeMakeup": ("mmaction2_test.avi", "mmaction2_demo.mp4"),
    "Basketball": ("mmaction2_test.mp4", "mmaction2_test.avi"),
}


def lay_out_ucf101(root: Path) -> tuple[Path, Path, dict[str, Path]]:
    """Class folders of symlinked clips and our own classInd/trainlist01/testlist01 (CRLF, as shipped)."""
    videos, splits = root / "UCF-101", root / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    sources, train, test = {}, [], []
    for label, (name, clips) in enumerate(LAYOUT.items(), start=1):
        (videos / name).mkdir(parents=True)
        for group, clip in enumerate(clips, start=1):
            rel = f"{name}/v_{name}_g{group:02d}_c01{Path(clip).suffix}"
            (videos / rel).symlink_to((CLIPS / clip).resolve())
            sources[rel.rsplit(".", 1)[0]] = CLIPS / clip
            (train if group == 1 else test).append(f"{rel} {label}" if group == 1 else rel)
    (splits / "classInd.txt").write_text("".join(f"{i} {n}\r\n" for i, n in enumerate(LAYOUT, start=1)))
    (splits / "trainlist01.txt").write_text("".join(f"{line}\r\n" for line in train))
    (splits / "testlist01.txt").write_text("".join(f"{line}\r\n" for line in test))
    return videos, splits, sources


def expected_shape(clip: Path) -> tuple[int, int, int]:
    """(frames, height, width) of ``clip`` decoded by OpenCV, resized to SHORT_SIDE on its short side."""
    capture = cv2.VideoCapture(str(clip))
    width, height = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()
    scale = SHORT_SIDE / min(width, height)
    return frames, round(height * scale), round(width * scale)


@pytest.mark.slow  # a whole extract-train-test-fuse run
def test_real_clips_laid_out_as_ucf101_go_through_extract_train_test_fuse(tmp_path):
    if not CLIPS.is_dir():
        pytest.skip(f"real clips folder {CLIPS} is not present (it ships beside the repo, not in it)")
    videos, splits, sources = lay_out_ucf101(tmp_path / "datasets")
    result = twostream(
        "+experiment=quickstart", "dataset=ucf101", f"dataset.root={videos}", f"dataset.splits_dir={splits}",
        f"dataset.short_side={SHORT_SIDE}", "flow=dis", "flow.params.preset=ultrafast", "name=real",
        "progress=false", "tracking.mode=disabled", "streams.spatial.epochs=1", "streams.temporal.epochs=1",
        "streams.temporal.L=5", "train.samples_per_video=2", "train.runtime.validate=false", "test.num_positions=2",
        "dataset.validation=null",  # one training clip a class: none to hold out
        "test.crops=1", "cache.in_memory=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((tmp_path / "outputs/real/results.json").read_text())
    assert set(results["accuracy"]) == {"spatial", "temporal", "fusion_average", "fusion_svm"}
    assert results["num_classes"] == 2 and results["num_test_videos"] == 2
    assert_results_match_score_files(tmp_path / "outputs/real")

    path = tmp_path / "data/cache/ucf101_dis.zarr"
    fingerprint = dict(zarr.open_group(path, mode="r").attrs["fingerprint"])
    assert fingerprint["short_side"] == SHORT_SIDE
    cache = FlowCache(path, fingerprint)
    for video_id, clip in sources.items():
        frames, height, width = expected_shape(clip)
        assert cache.attrs(video_id)["status"] == "complete", video_id
        assert cache.num_frames(video_id) == frames and cache.num_flows(video_id) == frames - 1, video_id
        assert cache.read_frames(video_id, frames - 1).shape == (1, height, width, 3), video_id
        assert cache.read_flow(video_id, frames - 2, 1).shape == (1, 2, height, width), video_id


@pytest.mark.slow  # ~20 s on 2 busy cores: a whole extract-train-test-fuse run
def test_multitask_run_trains_one_head_per_dataset_and_tests_the_evaluated_one(tmp_path):
    """dataset=ucf101_hmdb51 on the real clips: HMDB-51 (3 classes) evaluated, UCF-101 (2 classes) helping."""
    if not CLIPS.is_dir():
        pytest.skip(f"real clips folder {CLIPS} is not present (it ships beside the repo, not in it)")
    root = tmp_path / "datasets"
    _, _, ucf_sources = lay_out_ucf101(root)
    hmdb_classes = ["clap", "hug", "wave"]
    (root / "testTrainMulti_7030_splits").mkdir()
    clips = sorted(CLIPS.iterdir())
    for k, name in enumerate(hmdb_classes):
        (root / "hmdb51" / name).mkdir(parents=True)
        for clip, use in ((clips[k], 1), (clips[(k + 1) % len(clips)], 2)):
            (root / "hmdb51" / name / f"{name}_{use}.avi").symlink_to(clip.resolve())
        (root / f"testTrainMulti_7030_splits/{name}_test_split1.txt").write_text(
            f"{name}_1.avi 1 \n{name}_2.avi 2 \n")
    result = twostream(
        "+experiment=quickstart", "dataset=ucf101_hmdb51", f"dataset.root={root}", f"dataset.short_side={SHORT_SIDE}",
        "~streams.spatial", "flow=dis", "flow.params.preset=ultrafast", "name=multi", "progress=false",
        "tracking.mode=disabled", "streams.temporal.epochs=1", "streams.temporal.L=5", "train.samples_per_video=2",
        "train.runtime.validate=false", "test.num_positions=2", "test.crops=1", "dataset.validation=null", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((tmp_path / "outputs/multi/results.json").read_text())
    assert results["num_classes"] == 3 and results["num_test_videos"] == 3  # HMDB-51's test videos
    assert_results_match_score_files(tmp_path / "outputs/multi")
    checkpoint = torch.load(tmp_path / "outputs/multi/checkpoints/temporal.pt", weights_only=False)
    heads = [checkpoint["model"][f"heads.{i}.weight"].shape[0] for i in range(2)]
    assert heads == [3, 2] and "heads.2.weight" not in checkpoint["model"]
    path = tmp_path / "data/cache/ucf101_hmdb51_dis.zarr"
    cache = FlowCache(path, dict(zarr.open_group(path, mode="r").attrs["fingerprint"]))
    ucf_train = {i for i in ucf_sources if "_g01_" in i}
    hmdb = {f"{c}/{c}_{use}" for c in hmdb_classes for use in (1, 2)}
    assert set(cache.video_ids()) == hmdb | ucf_train  # UCF-101's test videos are never read
