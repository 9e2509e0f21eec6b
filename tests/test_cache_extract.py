"""The extract stage: bad input, resuming after SIGKILL, concurrent shards, worker processes, backward flow."""

import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from twostream.cache.extract import (
    ExtractSettings,
    extract_videos,
    log_flow_samples,
    parse_shard,
    select_shard,
    video_flow,
)
from twostream.cache.store import COMPLETE, CacheLayout, FlowCache, source_signature
from twostream.data.splits import Video
from twostream.errors import StageError
from twostream.flow import dequantize, get_estimator, quantize

FINGERPRINT = {"estimator": "dis", "params": {"preset": "medium"}, "bound": 20, "short_side": None,
               "backward": False}
DIS = ExtractSettings(estimator="dis", params={"preset": "medium"}, batch_size=3, short_side=None,
                      min_decoded_fraction=0.9)
LOSSLESS = CacheLayout({"name": "zstd", "level": 3}, {"name": "zstd", "level": 3})
JPEG = CacheLayout({"name": "jpeg", "level": 95}, {"name": "jpeg", "level": 95})
REPO = Path(__file__).resolve().parents[1]


def write_avi(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def moving(image: np.ndarray, t: int, speed: int = 2) -> np.ndarray:
    return np.stack([np.roll(image, speed * k, axis=1) for k in range(t)])


def test_extract_caches_good_videos_records_bad_ones_and_resumes(tmp_path, textured_image):
    frames = moving(textured_image, 5)
    good = tmp_path / "good.avi"
    write_avi(good, frames)
    long = tmp_path / "long.avi"
    write_avi(long, moving(textured_image, 40))
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    empty = tmp_path / "empty.avi"
    empty.touch()
    not_video = tmp_path / "text.avi"
    not_video.write_text("this is not a video")
    one_frame = tmp_path / "one.avi"
    write_avi(one_frame, frames[:1])
    names = ["good", "long", "truncated", "empty", "text", "one", "missing"]
    videos = [Video(n, tmp_path / f"{n}.avi", 0, None) for n in names]
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True, layout=LOSSLESS)
    summary = extract_videos(videos, cache, DIS, progress=False)
    assert summary.extracted == 2 and summary.pairs == 4 + 39
    assert cache.video_ids() == ["good", "long"]
    failures = cache.failures()
    assert set(failures) == {"truncated", "empty", "text", "one", "missing"} and summary.failed == failures
    assert "0 bytes" in failures["empty"] and str(empty) in failures["empty"]
    assert "need at least 2" in failures["one"]
    assert "no such file" in failures["missing"]
    assert "cannot open it as a video" in failures["text"]
    assert "truncated or damaged: its header promises 40 frames" in failures["truncated"]
    # The cached flow is the quantised flow of the decoded frames, batches stitched in order.
    decoded = cache.read_frames("good", 0, 5)
    expected = quantize(video_flow(decoded, get_estimator("dis", preset="medium"), batch_size=4), 20)
    np.testing.assert_array_equal(cache.read_flow("good", 0, 4, quantized=True), expected)
    assert np.median(dequantize(expected, 20)[:, 0, 8:-8, 8:-8]) == pytest.approx(2.0, abs=0.3)
    # A second run does nothing: everything is done or recorded as failed.
    again = extract_videos(videos, cache, DIS, progress=False)
    assert again.extracted == 0 and again.skipped == len(videos)


def test_backward_field_t_is_the_estimators_flow_from_frame_t_plus_1_to_t(tmp_path, textured_image):
    path = tmp_path / "clip.avi"
    write_avi(path, moving(textured_image, 6, speed=3))
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT | {"backward": True}, writable=True, layout=LOSSLESS)
    settings = dataclasses.replace(DIS, backward=True)
    summary = extract_videos([Video("clip", path, 0, None)], cache, settings, progress=False)
    assert summary.pairs == 2 * 5
    frames = cache.read_frames("clip", 0, 6)
    est = get_estimator("dis", preset="medium")
    for t in range(5):
        np.testing.assert_array_equal(cache.read_flow("clip", t, 1, "bwd", quantized=True)[0],
                                      quantize(est(frames[t + 1:t + 2], frames[t:t + 1]), 20)[0])
    bwd = cache.read_flow("clip", 0, 5, "bwd")[:, 0, 8:-8, 8:-8]
    fwd = cache.read_flow("clip", 0, 5, "fwd")[:, 0, 8:-8, 8:-8]
    assert np.median(fwd) == pytest.approx(3.0, abs=0.3) and np.median(bwd) == pytest.approx(-3.0, abs=0.3)


def test_a_changed_source_file_is_extracted_again(tmp_path, textured_image):
    frames = moving(textured_image, 4, speed=1)
    path = tmp_path / "clip.avi"
    write_avi(path, frames)
    videos = [Video("clip", path, 0, None)]
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True, layout=JPEG)
    first = extract_videos(videos, cache, DIS, progress=False)
    assert first.extracted == 1 and cache.status("clip", source_signature(path)) == COMPLETE
    write_avi(path, frames[:3])  # the file is replaced by a shorter video
    assert cache.status("clip", source_signature(path)) is None
    again = extract_videos(videos, cache, DIS, progress=False)
    assert again.extracted == 1 and cache.num_flows("clip") == 2


def test_shards_split_the_sorted_videos_disjointly_and_bad_specs_are_named():
    videos = [Video(f"v{k:02d}", Path(f"v{k}.avi"), 0, None) for k in (5, 3, 9, 1, 7, 3)]  # v03 twice
    parts = [select_shard(videos, f"{i}/3") for i in range(3)]
    ids = [[v.id for v in p] for p in parts]
    assert ids == [["v01", "v07"], ["v03", "v09"], ["v05"]]
    assert [v.id for v in select_shard(videos, None)] == ["v01", "v03", "v05", "v07", "v09"]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(StageError, match=r"I/N with 0 <= I < N"):
            parse_shard(bad)


# -- runs in other processes ----------------------------------------------------------------
# Each run extracts the .avi files of a folder (as two class folders, which concurrent shards
# both create) with Farneback (deterministic), forward and backward flow, JPEG-coded as the
# default config does.
RUNNER = """
import sys
from pathlib import Path
from twostream.cache.extract import ExtractSettings, extract_videos, select_shard
import json
from twostream.cache.frames import FrameSelection
from twostream.cache.store import CacheLayout, FlowCache
from twostream.data.splits import Video

folder, cache_path, shard, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
frames = FrameSelection(**json.loads(sys.argv[5]))
videos = [Video(f"class{k % 2}/{p.stem}", p, 0, None) for k, p in enumerate(sorted(Path(folder).glob("*.avi")))]
settings = ExtractSettings(estimator="farneback", params=dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3,
                           poly_n=5, poly_sigma=1.2), batch_size=4, short_side=None, backward=True)
fingerprint = {"estimator": "farneback", "bound": 20, "backward": True} | ({"frames": frames.fingerprint()}
                                                                          if frames.fingerprint() else {})
jpeg = {"name": "jpeg", "level": 95}
cache = FlowCache(cache_path, fingerprint, writable=True, layout=CacheLayout(jpeg, jpeg, frames=frames))
extract_videos(select_shard(videos, None if shard == "all" else shard), cache, settings, num_workers=workers,
               progress=False)
"""
RUN_FINGERPRINT = {"estimator": "farneback", "bound": 20, "backward": True}


def start_run(folder: Path, cache: Path, shard: str = "all", workers: int = 0, frames: str = "{}") -> subprocess.Popen:
    """Extract ``folder`` into ``cache`` in another process; ``frames``: FrameSelection's arguments as JSON."""
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(folder), str(cache), shard, str(workers), frames],
                            cwd=REPO, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()


def cache_contents(path: Path) -> dict[str, list[np.ndarray]]:
    cache = FlowCache(path, RUN_FINGERPRINT)
    return {v: [cache.read_frames(v, 0, cache.num_frames(v)), cache.read_flow(v, 0, cache.num_flows(v)),
                cache.read_flow(v, 0, cache.num_flows(v), "bwd")] for v in cache.video_ids()}


def assert_same_cache(a: dict[str, list[np.ndarray]], b: dict[str, list[np.ndarray]]) -> None:
    assert sorted(a) == sorted(b)
    for video in a:
        for x, y in zip(a[video], b[video], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=video)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """A folder of 10 small moving-texture clips, and the cache one uninterrupted run makes of it."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(11)
    for k in range(10):
        base = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
        write_avi(folder / f"clip{k:02d}.avi", moving(base, 16, speed=1 + k % 3))
    reference = folder.parent / "reference.zarr"
    finish(start_run(folder, reference))
    contents = cache_contents(reference)
    assert len(contents) == 10
    return folder, contents


def complete_videos(cache: Path) -> int:
    videos = cache / "videos"
    return sum(1 for _ in videos.glob("*/*/flow_bwd")) if videos.is_dir() else 0


def test_an_extraction_killed_with_sigkill_and_resumed_gives_the_same_cache(clips, tmp_path):
    folder, reference = clips
    cache = tmp_path / "c.zarr"
    run = start_run(folder, cache)
    deadline = time.monotonic() + 60
    while complete_videos(cache) < 3 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    survived = cache_contents(cache)
    assert 3 <= len(survived) < 10  # what was complete is served whole; the rest is not visible
    assert_same_cache(survived, {v: reference[v] for v in survived})
    finish(start_run(folder, cache))  # resume
    assert_same_cache(cache_contents(cache), reference)
    assert list((cache / "incoming").iterdir()) == []


def test_two_shards_at_once_on_an_empty_path_fill_one_complete_cache(clips, tmp_path):
    folder, reference = clips
    cache = tmp_path / "new" / "c.zarr"
    # Started together, both create the root; one worker pool process pair exercises num_workers.
    runs = [start_run(folder, cache, "0/2", workers=2), start_run(folder, cache, "1/2")]
    for run in runs:
        finish(run)
    assert_same_cache(cache_contents(cache), reference)
    assert sorted(p.name for p in cache.parent.iterdir()) == ["c.zarr"]  # the loser's staging root is gone


class _Images:
    """A RunLog that keeps what log_images was given."""

    enabled = True

    def __init__(self) -> None:
        self.logged: dict[str, list[np.ndarray]] = {}

    def log_images(self, key, images, captions):
        self.logged[key] = list(images)


def test_flow_samples_of_videos_of_different_sizes_keep_their_own_size(tmp_path: Path) -> None:
    cache = FlowCache(tmp_path / "c.zarr", {"bound": 20.0}, writable=True)
    rng = np.random.default_rng(1)
    for name, (h, w) in {"small": (6, 8), "portrait": (14, 10)}.items():
        frames = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        cache.write_video(name, frames, rng.uniform(-3, 3, (2, 2, h, w)).astype(np.float32), source={})
    run_log = _Images()
    log_flow_samples(run_log, cache, ["small", "portrait"], count=2)
    small, portrait = run_log.logged["flow_samples"]
    assert small.shape == (6, 16, 3) and portrait.shape == (14, 20, 3)  # frame | flow side by side, no padding
