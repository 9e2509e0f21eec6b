"""cache.frames: the cache keeps exactly the designed RGB frames, the test protocol scores the same
source frames as with every frame, training draws only stored frames, and a cache made with another
choice is refused before any work."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from test_cache_extract import DIS, FINGERPRINT, finish, moving, start_run, write_avi
from test_pipeline import twostream

from twostream.cache import cache_fingerprint, open_cache
from twostream.cache.extract import extract_videos
from twostream.cache.frames import FrameSelection, evenly_spaced
from twostream.cache.store import CacheLayout, CacheMismatchError, FlowCache
from twostream.data.splits import Video
from twostream.errors import ConfigError
from twostream.inputs.datasets import FrameSource, RandomPositions
from twostream.train.evaluate import TestProtocol

CONF = Path(__file__).resolve().parents[1] / "conf"
ZSTD = {"name": "zstd", "level": 3}
PROTOCOL = FrameSelection(keep="protocol", train_frames=2, test_positions=5)
EVERY = FrameSelection(keep="every", every=6, test_positions=5)


def test_indices_are_the_designed_ones_worked_out_by_hand():
    # 20 frames, 5 test positions: linspace(0, 19, 5) = 0, 4.75, 9.5, 14.25, 19 -> 0, 5, 10 (half to even), 14, 19
    # protocol, 2 training frames: the centres of 2 bins of the 15 other frames (1-4, 6-9, 11-13, 15-18):
    # positions floor(3.75) = 3 and floor(11.25) = 11 of that list -> frames 4 and 15
    assert PROTOCOL.indices(20) == [0, 4, 5, 10, 14, 15, 19]
    # 6 of 186 frames: the centres of 6 bins of all frames would all be test positions; these are not
    paper = FrameSelection(keep="protocol", train_frames=6, test_positions=25)
    assert len(paper.indices(186)) == 31 and set(evenly_spaced(25, 186)) < set(paper.indices(186))
    # every 6th: 0, 6, 12, 18, with the test positions
    assert EVERY.indices(20) == [0, 5, 6, 10, 12, 14, 18, 19]
    assert FrameSelection().indices(4) == [0, 1, 2, 3]
    assert PROTOCOL.indices(3) == [0, 1, 2], "a video shorter than the selection keeps all its frames"
    assert FrameSelection().fingerprint() is None, "every frame must fingerprint as caches made before the setting"
    assert PROTOCOL.fingerprint() == {"keep": "protocol", "train_frames": 2, "test_positions": 5}
    for bad, match in ((dict(keep="some"), "keep='some'"), (dict(keep="every", every=0), "every=0"),
                       (dict(keep="protocol", train_frames=-1), "train_frames=-1")):
        with pytest.raises(ConfigError, match=match):
            FrameSelection(**bad)


def extract(tmp_path: Path, name: str, frames: FrameSelection, videos: list[Video]) -> FlowCache:
    fingerprint = FINGERPRINT | ({"frames": frames.fingerprint()} if frames.fingerprint() else {})
    cache = FlowCache(tmp_path / f"{name}.zarr", fingerprint, writable=True, layout=CacheLayout(ZSTD, ZSTD, frames=frames))
    extract_videos(videos, cache, DIS, progress=False)
    return FlowCache(cache.path, fingerprint)


@pytest.fixture
def caches(tmp_path, textured_image) -> tuple[list[Video], FlowCache, FlowCache, FlowCache]:
    """Two clips (20 and 9 frames) extracted with every frame, the protocol's and every 6th."""
    videos = []
    for name, length in (("long", 20), ("short", 9)):
        write_avi(tmp_path / f"{name}.avi", moving(textured_image[:48, :64], length))
        videos.append(Video(name, tmp_path / f"{name}.avi", len(videos), None))
    return (videos, extract(tmp_path, "all", FrameSelection(), videos), extract(tmp_path, "protocol", PROTOCOL, videos),
            extract(tmp_path, "every", EVERY, videos))


def test_the_store_holds_exactly_the_designed_frames_read_back(caches):
    videos, every_frame, *subsets = caches
    for cache, selection in zip(subsets, (PROTOCOL, EVERY), strict=True):
        for video in videos:
            length = every_frame.num_frames(video.id)
            designed = selection.indices(length)
            stored = cache.attrs(video.id)
            assert stored["frame_indices"] == designed and stored["num_frames"] == length
            array = json.loads((cache.path / "videos" / video.id / "frames" / "zarr.json").read_text())
            assert array["shape"][0] == len(designed), "the frames array must hold the kept frames only"
            assert cache.num_frames(video.id) == length and cache.num_flows(video.id) == length - 1
            for t in designed:  # each kept frame is the very frame the every-frame cache has at t
                np.testing.assert_array_equal(cache.read_frames(video.id, t), every_frame.read_frames(video.id, t))
            missing = next(t for t in range(length) if t not in designed)
            with pytest.raises(IndexError, match=f"frame {missing} of '{video.id}' is not stored"):
                cache.read_frames(video.id, missing)
    # flow is kept whole whatever the frames
    np.testing.assert_array_equal(subsets[0].read_flow("long", 0, 19, quantized=True),
                                  every_frame.read_flow("long", 0, 19, quantized=True))


class MeanColourModel(torch.nn.Module):
    """Logits from the crop's mean colour: scores depend on every pixel of every frame scored."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        torch.nn.init.normal_(self.linear.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


def test_the_test_protocol_scores_the_same_source_frames_as_with_every_frame(caches):
    videos, every_frame, *subsets = caches
    scored, model = {}, MeanColourModel()
    for cache in (every_frame, *subsets):
        source = FrameSource(cache)
        positions = {v.id: source.test_positions(v.id, 5) for v in videos}
        protocol = TestProtocol(num_positions=5, crops=10, crop_size=32, batch_size=16, device=torch.device("cpu"),
                                progress=False)
        scores = protocol.score(model, source, videos, ["a", "b"])
        scored[cache.path.stem] = positions, scores.scores
    assert scored["all"][0] == {"long": [0, 5, 10, 14, 19], "short": [0, 2, 4, 6, 8]}
    for name in ("protocol", "every"):
        assert scored[name][0] == scored["all"][0], f"{name}: other frames scored than with every frame"
        np.testing.assert_array_equal(scored[name][1], scored["all"][1])
    # a count the cache did not keep (validation's few) moves to the nearest stored frame:
    # 3 of 20 frames are 0, 10 (9.5 half to even), 19, all kept; 4 are 0, 6, 13, 19 -> 0, 5, 14, 19
    assert FrameSource(subsets[0]).test_positions("long", 4) == [0, 5, 14, 19]


def test_training_draws_every_stored_frame_and_no_other(caches):
    videos, _, protocol, _ = caches
    source = FrameSource(protocol)
    drawn: list[int] = []
    read = protocol.read_frames
    protocol.read_frames = lambda video_id, start, length=1: drawn.append(start) or read(video_id, start, length)
    dataset = RandomPositions(source, videos[:1], crop_size=32, samples_per_video=200)
    torch.manual_seed(0)
    for i in range(len(dataset)):
        dataset[i]
    assert set(drawn) == set(PROTOCOL.indices(20))


def composed(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=["+experiment=quickstart", f"cache.path={tmp_path}/c.zarr",
                                                        f"paths.output_dir={tmp_path}", *overrides])


def test_a_cache_made_with_other_frames_is_refused_naming_the_fix(tmp_path):
    open_cache(composed(tmp_path, "cache.frames.keep=protocol"), writable=True)
    for other in (["cache.frames.keep=all"], ["cache.frames.keep=protocol", "cache.frames.train_frames=3"],
                  ["cache.frames.keep=protocol", "test.num_positions=25"]):
        with pytest.raises(CacheMismatchError, match=r"frames.*: cache has") as error:
            open_cache(composed(tmp_path, *other))
        fix = "run with cache.frames.keep=protocol cache.frames.train_frames=0 test.num_positions=10"
        assert fix in str(error.value) and "cache.rebuild=true" in str(error.value)
    with pytest.raises(ValueError, match="build both from one FrameSelection"):  # a writer that would lie
        FlowCache(tmp_path / "x.zarr", FINGERPRINT, writable=True, layout=CacheLayout(ZSTD, ZSTD, frames=PROTOCOL))
    # a cache made before the setting existed holds every frame: keep=all still opens it
    cfg = composed(tmp_path, "cache.frames.keep=all", f"cache.path={tmp_path}/old.zarr")
    assert "frames" not in cache_fingerprint(cfg)
    FlowCache(cfg.cache.path, cache_fingerprint(cfg), writable=True)
    open_cache(cfg)


@pytest.mark.slow
def test_a_mismatched_cache_stops_the_extract_and_train_stages_before_any_work(tmp_path):
    # ~40-100 s (two CLI runs, each importing torch) under load
    common = ["+experiment=quickstart", f"paths.data_dir={tmp_path}/data", "progress=false", "tracking.mode=disabled",
              f"cache.path={tmp_path}/c.zarr"]
    cache = open_cache(composed(tmp_path, *common[1:], "cache.frames.keep=protocol"), writable=True)
    for stage in ("extract", "train"):
        result = twostream(*common, "cache.frames.keep=all", f"stage={stage}", f"name=refused_{stage}", cwd=tmp_path)
        assert result.returncode != 0 and "run with cache.frames.keep=protocol" in result.stderr, result.stderr[-2000:]
    # refused before the synthetic set was generated, anything extracted or trained
    assert cache.video_ids() == [] and not (tmp_path / "data" / "synthetic").exists()
    assert not list(tmp_path.glob("outputs/*/checkpoints/*"))


def stored_contents(path: Path) -> dict[str, list[np.ndarray]]:
    cache = FlowCache.open(path)
    return {v: [cache.frame_indices(v), np.concatenate([cache.read_frames(v, int(t)) for t in cache.frame_indices(v)]),
                cache.read_flow(v, 0, cache.num_flows(v), quantized=True)] for v in cache.video_ids()}


@pytest.mark.slow
def test_shards_and_resume_fill_a_protocol_cache_as_one_run_does(tmp_path, textured_image):
    # ~25 s: five extraction processes
    folder = tmp_path / "clips"
    folder.mkdir()
    for k in range(6):
        write_avi(folder / f"clip{k}.avi", moving(np.roll(textured_image[:48, :64], 7 * k, axis=0), 12 + k))
    frames = json.dumps({"keep": "protocol", "train_frames": 2, "test_positions": 5})
    finish(start_run(folder, tmp_path / "one.zarr", frames=frames))
    reference = stored_contents(tmp_path / "one.zarr")
    assert len(reference) == 6
    shards = [start_run(folder, tmp_path / "shards.zarr", "0/2", frames=frames),
              start_run(folder, tmp_path / "shards.zarr", "1/2", workers=2, frames=frames)]
    for run in shards:
        finish(run)
    # resume: a run that did a third of the videos, then a whole run, which must leave those alone
    finish(start_run(folder, tmp_path / "resumed.zarr", "0/3", frames=frames))
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "resumed.zarr" / "videos").glob("*/*/zarr.json")}
    assert len(first) == 2
    finish(start_run(folder, tmp_path / "resumed.zarr", frames=frames))
    assert {p: p.stat().st_mtime_ns for p in first} == first, "a resumed run rewrote finished videos"
    for name in ("shards", "resumed"):
        contents = stored_contents(tmp_path / f"{name}.zarr")
        assert sorted(contents) == sorted(reference), name
        for video, arrays in reference.items():
            for x, y in zip(arrays, contents[video], strict=True):
                np.testing.assert_array_equal(x, y, err_msg=f"{name}: {video}")
