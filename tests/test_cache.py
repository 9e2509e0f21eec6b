"""The Zarr frame/flow cache: read-back in both directions and codecs, atomic writes, fingerprints."""

import json
import threading
import time

import imagecodecs
import numpy as np
import pytest
import zarr

from twostream.cache.codecs import JpegCodec
from twostream.cache.shards import ShardedArray
from twostream.cache.store import COMPLETE, CacheLayout, CacheMismatchError, FlowCache
from twostream.flow import dequantize, quantize

FINGERPRINT = {"estimator": "dis", "params": {"preset": "medium"}, "bound": 20, "short_side": None,
               "backward": False}
SOURCE = {"size": 123, "mtime_ns": 456}
ZSTD, JPEG = {"name": "zstd", "level": 3}, {"name": "jpeg", "level": 95}


def random_video(rng: np.random.Generator, t: int = 6, h: int = 24, w: int = 32):
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    flow = rng.integers(0, 256, (t - 1, 2, h, w), dtype=np.uint8)
    return frames, flow


def smooth_flow(t: int = 7, h: int = 32, w: int = 40) -> np.ndarray:
    """uint8 flow fields that vary slowly in space, as real flow does (JPEG's case)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([128 + 40 * np.sin(x / 9 + k), 128 + 30 * np.cos(y / 7 - k)])
                     for k in range(t)]).round().astype(np.uint8)


@pytest.mark.parametrize("per_chunk", [1, 4])
def test_lossless_write_then_read_back_both_directions(tmp_path, per_chunk):
    rng = np.random.default_rng(0)
    fingerprint = FINGERPRINT | {"backward": True}
    cache = FlowCache(tmp_path / "c.zarr", fingerprint, writable=True,
                      layout=CacheLayout(ZSTD, ZSTD, flows_per_chunk=per_chunk, frames_per_chunk=per_chunk))
    frames, fwd = random_video(rng)
    frames[2] = 0  # an all-fill-value chunk, which Zarr does not write: it must still read back
    bwd = rng.integers(0, 256, fwd.shape, dtype=np.uint8)
    cache.write_video("Cls/v_Cls_g01_c01", frames, fwd, bwd, source=SOURCE)
    reader = FlowCache(tmp_path / "c.zarr", fingerprint)
    vid = "Cls/v_Cls_g01_c01"
    assert reader.video_ids() == [vid] and reader.num_frames(vid) == 6 and reader.num_flows(vid) == 5
    for start, length in [(0, 5), (1, 3), (3, 2), (4, 1)]:  # whole and partial chunks
        np.testing.assert_array_equal(reader.read_flow(vid, start, length, quantized=True), fwd[start:start + length])
        np.testing.assert_array_equal(reader.read_flow(vid, start, length, direction="bwd", quantized=True),
                                      bwd[start:start + length])
    np.testing.assert_array_equal(reader.read_frames(vid, 1, 3), frames[1:4])
    with pytest.raises(IndexError, match="out of range"):
        reader.read_flow(vid, 3, 3)
    with pytest.raises(ValueError, match="direction"):
        reader.read_flow(vid, 0, 1, direction="sideways")
    # Every array is one shard file plus its metadata: a video is a handful of files.
    files = [p for p in (tmp_path / "c.zarr" / "videos" / "Cls" / "v_Cls_g01_c01").rglob("*") if p.is_file()]
    assert len(files) == 1 + 3 * 2


def test_flow_is_written_and_read_in_pixels_with_the_caches_own_bound(tmp_path):
    bound = FINGERPRINT["bound"]
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    pixels = rng.uniform(-1.5 * bound, 1.5 * bound, (3, 2, 8, 8)).astype(np.float32)  # some beyond +-bound
    FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True).write_video("v", frames, pixels, source=SOURCE)
    reader = FlowCache.open(tmp_path / "c.zarr")  # no fingerprint needed to read
    assert reader.fingerprint == FINGERPRINT and reader.bound == bound
    stored = reader.read_flow("v", 0, 3, quantized=True)
    np.testing.assert_array_equal(stored, quantize(pixels, bound))
    got = reader.read_flow("v", 0, 3)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, dequantize(stored, bound))
    clipped = np.clip(pixels, -bound, bound)
    assert np.abs(got - clipped).max() <= bound / 255 + 1e-5  # half a quantisation step
    with pytest.raises(FileNotFoundError, match="no flow cache"):
        FlowCache.open(tmp_path / "nowhere.zarr")


def test_jpeg_chunks_read_back_close_and_as_zarr_reads_them(tmp_path):
    flow = smooth_flow()
    frames = np.repeat(np.repeat(flow[:, :1].transpose(0, 2, 3, 1), 3, axis=-1), 1, axis=0)
    frames = np.concatenate([frames, frames[-1:]])
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True,
                      layout=CacheLayout(JPEG, JPEG, flows_per_chunk=3, frames_per_chunk=1))
    cache.write_video("v", frames, flow, source=SOURCE)
    got = FlowCache(tmp_path / "c.zarr", FINGERPRINT).read_flow("v", 0, 7, quantized=True)
    # Zarr's own read path (through the registered codec) agrees with the fast reader...
    np.testing.assert_array_equal(got, zarr.open_array(tmp_path / "c.zarr" / "videos" / "v" / "flow_fwd")[:])
    # ...and JPEG q95 keeps smooth flow within about one quantisation step.
    error = np.abs(got.astype(int) - flow)
    assert error.mean() < 0.5 and error.max() <= 3


def test_jpeg_chunks_are_encoded_at_once_in_threads_and_stored_as_a_serial_encoder_makes_them(tmp_path, monkeypatch):
    flow = smooth_flow(t=9)
    frames = np.zeros((10, 32, 40, 3), np.uint8)
    running, most = [0], [0]
    lock = threading.Lock()
    encode = JpegCodec.encode_chunk

    def watched(self, chunk):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)  # long enough for the chunks' encodings to overlap, if they can
        try:
            return encode(self, chunk)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(JpegCodec, "encode_chunk", watched)
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True,
                      layout=CacheLayout(JPEG, JPEG, flows_per_chunk=1, frames_per_chunk=1))
    cache.write_video("v", frames, flow, source=SOURCE)
    assert most[0] > 1
    # the shard file: the chunks, then (offset, nbytes) per chunk and a crc32c; each chunk is the JPEG
    # that libjpeg-turbo makes of that field alone
    (shard,) = (p for p in (tmp_path / "c.zarr" / "videos" / "v" / "flow_fwd").rglob("*")
                if p.is_file() and p.name != "zarr.json")
    data = shard.read_bytes()
    index = np.frombuffer(data[-(16 * len(flow) + 4):-4], "<u8").reshape(-1, 2)
    for field, (offset, nbytes) in zip(flow, index, strict=True):
        expected = imagecodecs.jpeg8_encode(field.reshape(-1, field.shape[-1]), level=95, optimize=True)
        assert data[offset:offset + nbytes] == bytes(expected)


def test_sharded_array_rejects_a_layout_it_does_not_know(tmp_path):
    zarr.create_array(tmp_path / "plain", shape=(4, 3), dtype="uint8", chunks=(2, 3))
    with pytest.raises(ValueError, match="not the cache's layout"):
        ShardedArray(tmp_path / "plain")


def test_a_damaged_shard_index_is_named(tmp_path):
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    frames, flow = random_video(np.random.default_rng(3))
    cache.write_video("v", frames, flow, source=SOURCE)
    shard = tmp_path / "c.zarr" / "videos" / "v" / "flow_fwd" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        FlowCache(tmp_path / "c.zarr", FINGERPRINT).read_flow("v", 0, 1)


def test_leftovers_of_a_killed_writer_are_never_served_and_are_cleared(tmp_path):
    rng = np.random.default_rng(1)
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    # What a writer killed mid-video leaves: a half-written group in incoming/, under the
    # video's quoted id, and nothing in videos/.
    leftover = zarr.open_group(tmp_path / "c.zarr" / "incoming" / "Cls%2Fv_half+0123", mode="w")
    leftover.create_array("flow_fwd", shape=(5, 2, 4, 4), dtype="uint8")
    assert cache.video_ids() == [] and cache.failures() == {} and cache.status("Cls/v_half", SOURCE) is None
    with pytest.raises(KeyError, match="not completely extracted"):
        cache.read_flow("Cls/v_half", 0, 1)
    frames, flow = random_video(rng)
    cache.write_video("Cls/v_half", frames, flow, source=SOURCE)
    assert list((tmp_path / "c.zarr" / "incoming").iterdir()) == []
    assert cache.status("Cls/v_half", SOURCE) == COMPLETE
    np.testing.assert_array_equal(FlowCache(tmp_path / "c.zarr", FINGERPRINT).read_flow("Cls/v_half", 0, 5,
                                                                                   quantized=True), flow)


def test_a_failed_record_is_replaced_by_a_later_success_and_attrs_say_how_it_was_made(tmp_path):
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    cache.mark_failed("v", "v.avi: file is empty (0 bytes)", source=SOURCE)
    assert cache.failures() == {"v": "v.avi: file is empty (0 bytes)"} and cache.video_ids() == []
    frames, flow = random_video(np.random.default_rng(2))
    new_source = {"size": 999, "mtime_ns": 1}
    cache.write_video("v", frames, flow, source=new_source)
    assert cache.failures() == {} and cache.video_ids() == ["v"]
    attrs = cache.attrs("v")
    assert attrs["status"] == COMPLETE and attrs["source"] == new_source and attrs["settings"] == FINGERPRINT
    assert {"opencv", "torch", "zarr", "numpy"} <= set(attrs["versions"]) and attrs["versions"]["zarr"] == zarr.__version__


def test_backward_flow_must_match_the_cache(tmp_path):
    cache = FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    frames, flow = random_video(np.random.default_rng(4))
    with pytest.raises(ValueError, match="takes no backward flow"):
        cache.write_video("v", frames, flow, flow, source=SOURCE)
    cache.write_video("v", frames, flow, source=SOURCE)
    with pytest.raises(ValueError, match="holds no backward flow; extract with cache.backward=true"):
        cache.read_flow("v", 0, 1, direction="bwd")
    with pytest.raises(CacheMismatchError, match="backward: cache has False, config asks for True"):
        FlowCache(tmp_path / "c.zarr", FINGERPRINT | {"backward": True})


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]  # nothing left aside


def test_a_cache_of_an_older_format_is_refused(tmp_path):
    FlowCache(tmp_path / "c.zarr", FINGERPRINT, writable=True)
    meta_path = tmp_path / "c.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["format"] = 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CacheMismatchError, match="format: cache has 1"):
        FlowCache(tmp_path / "c.zarr", FINGERPRINT)


def test_missing_cache_says_run_extract_and_a_foreign_folder_is_not_taken(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage=extract"):
        FlowCache(tmp_path / "nothing.zarr", FINGERPRINT)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a flow cache"):
        FlowCache(tmp_path / "mine", FINGERPRINT, writable=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
