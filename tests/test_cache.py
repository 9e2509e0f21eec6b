"""The Zarr frame/flow cache: read-back, completion, failures, fingerprints; and the extract stage."""

import cv2
import numpy as np
import pytest

from twostream.cache.extract import extract_videos, video_flow
from twostream.cache.store import COMPLETE, CacheMismatchError, FlowCache, source_signature
from twostream.data.splits import Video
from twostream.flow import dequantize, get_estimator, quantize

FINGERPRINT = {"estimator": "dis", "params": {"preset": "medium"}, "bound": 20, "short_side": None}
SOURCE = {"size": 123, "mtime_ns": 456}


def random_video(rng: np.random.Generator, t: int = 6, h: int = 24, w: int = 32):
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    flow = rng.integers(0, 256, (t - 1, 2, h, w), dtype=np.uint8)
    return frames, flow


def test_write_then_read_back(tmp_path):
    rng = np.random.default_rng(0)
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    frames, flow = random_video(rng)
    cache.write_video("Cls/v_Cls_g01_c01", frames, flow, source=SOURCE, flows_per_chunk=2)
    reader = FlowCache(tmp_path / "c.zarr", FINGERPRINT)
    assert reader.video_ids() == ["Cls/v_Cls_g01_c01"]
    assert reader.num_frames("Cls/v_Cls_g01_c01") == 6 and reader.num_flows("Cls/v_Cls_g01_c01") == 5
    np.testing.assert_array_equal(reader.read_flow("Cls/v_Cls_g01_c01", 1, 3), flow[1:4])
    np.testing.assert_array_equal(reader.read_frames("Cls/v_Cls_g01_c01", 4, 2), frames[4:6])
    with pytest.raises(IndexError, match="out of range"):
        reader.read_flow("Cls/v_Cls_g01_c01", 3, 3)


def test_a_half_written_video_is_never_served_and_is_redone(tmp_path):
    rng = np.random.default_rng(1)
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    # What a writer killed mid-video leaves: the group and an array, but no status.
    group = cache.root.require_group("videos/Cls/v_half")
    group.create_array("flow_fwd", shape=(5, 2, 4, 4), dtype="uint8")
    assert cache.video_ids() == [] and cache.status("Cls/v_half", SOURCE) is None
    with pytest.raises(KeyError, match="not completely extracted"):
        cache.read_flow("Cls/v_half", 0, 1)
    frames, flow = random_video(rng)
    cache.write_video("Cls/v_half", frames, flow, source=SOURCE, flows_per_chunk=4)
    assert cache.status("Cls/v_half", SOURCE) == COMPLETE
    np.testing.assert_array_equal(FlowCache(tmp_path / "c.zarr", FINGERPRINT).read_flow("Cls/v_half", 0, 5), flow)


def test_other_settings_are_refused_naming_the_keys(tmp_path):
    FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    other = FINGERPRINT | {"bound": 15, "params": {"preset": "fast"}}
    with pytest.raises(CacheMismatchError) as error:
        FlowCache(tmp_path / "c.zarr", other)
    assert "bound: cache has 20, config asks for 15" in str(error.value)
    assert "params.preset: cache has 'medium', config asks for 'fast'" in str(error.value)
    assert "cache.rebuild=true" in str(error.value)
    rebuilt = FlowCache(tmp_path / "c.zarr", other, writable=True, rebuild=True)
    assert rebuilt.video_ids() == []
    FlowCache(tmp_path / "c.zarr", other)  # now matches


def test_missing_cache_says_run_extract(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage=extract"):
        FlowCache(tmp_path / "nothing.zarr", FINGERPRINT)


def write_avi(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def test_extract_caches_good_videos_records_bad_ones_and_resumes(tmp_path, textured_image):
    frames = np.stack([np.roll(textured_image, 2 * t, axis=1) for t in range(5)])
    good = tmp_path / "good.avi"
    write_avi(good, frames)
    empty = tmp_path / "empty.avi"
    empty.touch()
    not_video = tmp_path / "text.avi"
    not_video.write_text("this is not a video")
    one_frame = tmp_path / "one.avi"
    write_avi(one_frame, frames[:1])
    videos = [Video("good", good, 0, None), Video("empty", empty, 0, None),
              Video("text", not_video, 0, None), Video("one", one_frame, 0, None),
              Video("missing", tmp_path / "missing.avi", 0, None)]
    est = get_estimator("dis", preset="medium")
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    summary = extract_videos(videos, cache, est, short_side=None, batch_size=3, flows_per_chunk=2,
                             progress=False)
    assert summary.extracted == 1 and summary.pairs == 4
    assert cache.video_ids() == ["good"]
    failures = cache.failures()
    assert set(failures) == {"empty", "text", "one", "missing"}
    assert "0 bytes" in failures["empty"] and str(empty) in failures["empty"]
    assert "need at least 2" in failures["one"]
    assert "no such file" in failures["missing"]
    # The cached flow is the quantised flow of the decoded frames, batches stitched in order.
    decoded = FlowCache(tmp_path / "c.zarr", FINGERPRINT).read_frames("good", 0, 5)
    expected = quantize(video_flow(decoded, est, batch_size=4), 20)
    np.testing.assert_array_equal(cache.read_flow("good", 0, 4), expected)
    assert np.median(dequantize(expected, 20)[:, 0, 8:-8, 8:-8]) == pytest.approx(2.0, abs=0.3)
    # A second run does nothing: everything is done or recorded as failed.
    again = extract_videos(videos, cache, est, short_side=None, batch_size=3, flows_per_chunk=2,
                           progress=False)
    assert again.extracted == 0 and again.skipped == 5


def test_a_changed_source_file_is_extracted_again(tmp_path, textured_image):
    frames = np.stack([np.roll(textured_image, t, axis=1) for t in range(4)])
    path = tmp_path / "clip.avi"
    write_avi(path, frames)
    videos = [Video("clip", path, 0, None)]
    est = get_estimator("dis", preset="medium")
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    first = extract_videos(videos, cache, est, short_side=None, batch_size=4, flows_per_chunk=2, progress=False)
    assert first.extracted == 1 and cache.status("clip", source_signature(path)) == COMPLETE
    write_avi(path, frames[:3])  # the file is replaced by a shorter video
    assert cache.status("clip", source_signature(path)) is None
    again = extract_videos(videos, cache, est, short_side=None, batch_size=4, flows_per_chunk=2, progress=False)
    assert again.extracted == 1 and cache.num_flows("clip") == 2
