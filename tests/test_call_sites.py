"""The places that wire tested helpers together, tested through the call sites the pipeline uses.

Each helper here has its own tests (stack_flow, CNNM2048, the clip renderer); these check what the
call site hands it, from a composed config: which backward fields the temporal stream's input
source reads for a window, which architecture options each stream's network is built with, and
that ``dataset.generator.seed`` reaches every random draw of the synthetic generator.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from twostream.cache import open_cache
from twostream.data import synthetic
from twostream.data.catalog import load_split_lists
from twostream.data.splits import SplitLists, Video
from twostream.models import first_conv
from twostream.train.stage import stream_parts

CONF = Path(__file__).resolve().parents[1] / "conf"
FRAMES, H, W = 8, 72, 72  # 7 flow fields per direction; crops of 64 px
BOUND = 20  # conf/cache's default


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=["paths.output_dir=.", *overrides])


# Every field constant, with its own quantised value: a stack's channels tell which field is where.
def fwd_value(t: int, axis: int) -> int:
    return 150 + 10 * t + axis


def bwd_value(t: int, axis: int) -> int:
    return 10 + 10 * t + axis


def constant_fields() -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward uint8 fields, each constant with the values above."""
    fields = np.empty((2, FRAMES - 1, 2, H, W), np.uint8)
    for t in range(FRAMES - 1):
        for axis in range(2):
            fields[0, t, axis], fields[1, t, axis] = fwd_value(t, axis), bwd_value(t, axis)
    return fields[0], fields[1]


def pixels(q):
    """The cache's documented mapping of a stored value to pixels."""
    return np.asarray(q) * 2 * BOUND / 255 - BOUND


def tiny_stream_config(tmp_path: Path, *overrides: str, fields: tuple[np.ndarray, np.ndarray] | None = None):
    """The default config with a backward-flow cache at ``tmp_path`` holding video ``v`` with ``fields``
    (forward, backward; default :func:`constant_fields`) in a lossless codec, so values read back
    exactly, and a narrow CNN-M-2048 (the paper's LRN kept) on 64 px crops."""
    cfg = composed(f"cache.path={tmp_path / 'c.zarr'}", "cache.backward=true", "cache.flow_codec.name=zstd",
                   "cache.flow_codec.level=3", "model.conv_widths=[8,16,16,16,16]", "model.fc_widths=[32,16]",
                   "model.norm=lrn", "train.crop_size=64", *overrides)
    fwd, bwd = fields or constant_fields()
    frames = np.zeros((FRAMES, H, W, 3), np.uint8)
    open_cache(cfg, writable=True).write_video("v", frames, fwd, bwd, source={"size": 1, "mtime_ns": 0})
    return cfg


LISTS = SplitLists(classes=["a", "b", "c"], train=[Video("v", Path("v.avi"), 0, None)], test=[])


def quantised(stack: np.ndarray) -> np.ndarray:
    """Each (x, y) field's stored value, from its first pixel (the documented mapping inverted)."""
    return np.rint((stack[:, 0, 0] + BOUND) * 255 / (2 * BOUND)).astype(int).reshape(-1, 2)


@pytest.mark.parametrize("stacking", ["optical_flow", "trajectory"])
def test_bidirectional_stacks_read_the_window_s_first_half_backwards(tmp_path, stacking):
    """stacking.py's definition, for L=4 from frame s: backward fields s, s+1 (frames s..s+2), then
    forward fields s+2, s+3 (frames s+2..s+4), read through the source the train and test stages build."""
    cfg = tiny_stream_config(tmp_path, "streams.temporal.L=4", "streams.temporal.bidirectional=true",
                             f"streams.temporal.stacking={stacking}",
                             "streams.temporal.mean_subtraction=false")
    _, source, _ = stream_parts(cfg, LISTS, "temporal")
    assert source.num_positions("v") == FRAMES - 4, "windows of L+1 frames; the last ends at the last frame"
    for s in range(FRAMES - 4):
        expected = [[bwd_value(s, 0), bwd_value(s, 1)], [bwd_value(s + 1, 0), bwd_value(s + 1, 1)],
                    [fwd_value(s + 2, 0), fwd_value(s + 2, 1)], [fwd_value(s + 3, 0), fwd_value(s + 3, 1)]]
        stack = source.load("v", s)
        assert stack.shape == (8, H, W)
        assert np.ptp(stack, axis=(1, 2)).max() < 1e-4, "constant fields give constant channels"
        assert quantised(stack).tolist() == expected, f"window from frame {s}: fields (x, y) as stored"


def lrn_after_conv(block: nn.Sequential) -> bool:
    return any(isinstance(m, nn.LocalResponseNorm) for m in block)


def test_both_streams_built_from_a_config_get_their_own_architecture_options(tmp_path):
    """The paper's CNN-M-2048 per stream, as stream_parts builds it from the composed config:
    the spatial net takes 3 channels with LRN after conv1 and conv2, the temporal net 2L channels
    with no LRN after conv2; each has its stream's dropout, the training crop's size and one head
    of the task's classes."""
    cfg = tiny_stream_config(tmp_path, "streams.temporal.L=6",
                             "streams.spatial.dropout=0.3", "streams.temporal.dropout=0.8")
    nets = {stream: stream_parts(cfg, LISTS, stream)[2] for stream in ("spatial", "temporal")}
    for stream, channels, conv2_lrn, dropout in (("spatial", 3, True, 0.3), ("temporal", 12, False, 0.8)):
        net = nets[stream]
        assert first_conv(net)[2].in_channels == channels, stream
        features = net.trunk.features
        assert lrn_after_conv(features[0]), f"{stream}: conv1 has LRN in both streams"
        assert lrn_after_conv(features[1]) == conv2_lrn, f"{stream}: conv2's LRN (the temporal net drops it)"
        assert not any(lrn_after_conv(block) for block in features[2:]), stream
        dropouts = {m.p for m in net.modules() if isinstance(m, nn.Dropout)}
        assert dropouts == {dropout}, f"{stream}: its dropout"
        assert [head.out_features for head in net.heads] == [3], stream
        assert net.eval()(torch.zeros(1, channels, 64, 64)).shape == (1, 3), f"{stream}: sized for the crop"


# A small generated dataset with every motion: 4 classes x 2 groups x 1 clip of 4 frames.
GENERATOR = ["dataset.generator.height=24", "dataset.generator.width=24", "dataset.generator.num_frames=4",
             "dataset.generator.groups_per_class=2", "dataset.generator.clips_per_group=1",
             "dataset.generator.test_groups=1", "dataset.generator.object_size=8",
             "dataset.generator.appearances=[Checker]", "dataset.validation=null"]
RENDER = synthetic._render_clip  # the renderer itself, whatever a test has put in its place
DRAWS = [f.name for f in dataclasses.fields(synthetic.ClipDraws)]  # every random element of a clip


def generated_draws(monkeypatch, root: Path, seed: int) -> list[tuple[str, np.ndarray, synthetic.ClipDraws]]:
    """(motion, background, random draws) of every clip, in generation order, as load_split_lists
    makes the dataset from the composed config with ``dataset.generator.seed=seed``."""
    calls = []

    def recording(p, appearance, motion, background, draws):
        calls.append((motion, background.copy(), draws))
        return RENDER(p, appearance, motion, background, draws)

    monkeypatch.setattr(synthetic, "_render_clip", recording)
    load_split_lists(composed(f"dataset.root={root}", f"dataset.generator.seed={seed}", *GENERATOR).dataset)
    return calls


def test_another_generator_seed_changes_every_random_element_of_every_clip(tmp_path, monkeypatch):
    first, second = (generated_draws(monkeypatch, tmp_path / str(seed), seed) for seed in (0, 1))
    assert len(first) == len(second) == 8
    assert {motion for motion, *_ in first} == set(synthetic.MOTIONS)
    for (motion, background_a, a), (_, background_b, b) in zip(first, second, strict=True):
        assert np.mean(background_a != background_b) > 0.99, f"{motion}: the background ignores the seed"
        for name in DRAWS:
            value_a, value_b = getattr(a, name), getattr(b, name)
            if value_a is None:  # a draw of another motion (Shuttle's period and phase)
                assert value_b is None and motion != "Shuttle", (motion, name)
                continue
            assert np.all(np.asarray(value_a) != np.asarray(value_b)), f"{motion}: {name} ignores the seed"
    again = generated_draws(monkeypatch, tmp_path / "again", 0)
    for (_, background_a, a), (_, background_b, b) in zip(first, again, strict=True):
        assert np.array_equal(background_a, background_b), "the same seed, the same background"
        for name in DRAWS:
            assert np.array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name))), name
