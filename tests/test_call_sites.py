"""The places that wire tested helpers together, tested through the call sites the pipeline uses.

Each helper here has its own tests (stack_flow, CNNM2048, the clip renderer); these check what the
call site hands it, from a composed config: which backward fields the temporal stream's input
source reads for a window, which architecture options each stream's network is built with, and
that ``dataset.generator.seed`` reaches every random draw of the synthetic generator; then, from a
walk over every stage (tests/conftest.py lists it), the stacking mode's way to the source, the
training samples (flips, windows, crops, multiscale) and the test stage's protocol settings.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from twostream.cache import cache_fingerprint, open_cache
from twostream.data import synthetic
from twostream.data.catalog import load_split_lists
from twostream.data.splits import SplitLists, Video
from twostream.inputs.datasets import RandomPositions
from twostream.models import first_conv
from twostream.rundir import RunDir
from twostream.scores import Scores
from twostream.train import stage
from twostream.train.evaluate import TestProtocol
from twostream.train.loop import CheckpointMismatchError, train_stream
from twostream.train.stage import stream_parts, training_settings

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


def tiny_config(tmp_path: Path, *overrides: str):
    """The default config with a lossless backward-flow cache at ``tmp_path`` and a narrow CNN-M-2048
    (the paper's LRN kept) on 64 px crops."""
    return composed(f"cache.path={tmp_path / 'c.zarr'}", "cache.backward=true", "cache.flow_codec.name=zstd",
                    "cache.flow_codec.level=3", "model.conv_widths=[8,16,16,16,16]", "model.fc_widths=[32,16]",
                    "model.norm=lrn", "train.crop_size=64", f"paths.output_dir={tmp_path}", *overrides)


def tiny_stream_config(tmp_path: Path, *overrides: str, fields: tuple[np.ndarray, np.ndarray] | None = None):
    """The default config with a backward-flow cache at ``tmp_path`` holding video ``v`` with ``fields``
    (forward, backward; default :func:`constant_fields`) in a lossless codec, so values read back
    exactly, and a narrow CNN-M-2048 (the paper's LRN kept) on 64 px crops."""
    cfg = tiny_config(tmp_path, *overrides)
    fwd, bwd = fields or constant_fields()
    frames = np.zeros((FRAMES, H, W, 3), np.uint8)
    open_cache(cfg, writable=True).write_video("v", frames, fwd, bwd, source={"size": 1, "mtime_ns": 0})
    return cfg


def context_of(cfg, lists: SplitLists) -> stage.RunContext:
    """What the pipeline hands the train and test stages, on the CPU: the cache and test protocol of ``cfg``."""
    device = torch.device("cpu")
    return stage.RunContext(lists, open_cache(cfg), RunDir(cfg.paths.output_dir), device,
                            TestProtocol.from_config(cfg, device, progress=False), cache_fingerprint(cfg))


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
    _, source, _ = stream_parts(cfg, open_cache(cfg), LISTS, "temporal")
    assert source.num_positions("v") == FRAMES - 4, "windows of L+1 frames; the last ends at the last frame"
    for s in range(FRAMES - 4):
        expected = [[bwd_value(s, 0), bwd_value(s, 1)], [bwd_value(s + 1, 0), bwd_value(s + 1, 1)],
                    [fwd_value(s + 2, 0), fwd_value(s + 2, 1)], [fwd_value(s + 3, 0), fwd_value(s + 3, 1)]]
        stack = source.load("v", s)
        assert stack.shape == (8, H, W)
        assert np.ptp(stack, axis=(1, 2)).max() < 1e-4, "constant fields give constant channels"
        assert quantised(stack).tolist() == expected, f"window from frame {s}: fields (x, y) as stored"


@pytest.mark.parametrize("stacking", ["optical_flow", "trajectory"])
def test_the_stacking_mode_reaches_the_temporal_source(tmp_path, stacking):
    """Flow that moves every point dx to the right, with a y displacement that grows along x:
    optical-flow stacking samples the second field at the same pixel, trajectory stacking dx
    further right, where the point has moved (bilinear sampling of a linear field is exact)."""
    fwd = np.empty((FRAMES - 1, 2, H, W), np.uint8)
    fwd[:, 0], fwd[:, 1] = 140, 100 + np.arange(W, dtype=np.uint8)
    cfg = tiny_stream_config(tmp_path, "streams.temporal.L=2", f"streams.temporal.stacking={stacking}",
                             "streams.temporal.mean_subtraction=false", fields=(fwd, fwd))
    _, source, _ = stream_parts(cfg, open_cache(cfg), LISTS, "temporal")
    columns = np.arange(W - 2)  # where the moved point stays inside the frame
    moved = columns + pixels(140) if stacking == "trajectory" else columns
    stack = source.load("v", 0)
    np.testing.assert_allclose(stack[1, 0, columns], pixels(100 + columns), atol=1e-3,
                               err_msg="first field's y")
    np.testing.assert_allclose(stack[3, 0, columns], pixels(100 + moved), atol=1e-3,
                               err_msg=f"second field's y, {stacking} stacking")


def test_training_samples_flip_flow_by_negating_x_and_reach_every_window(tmp_path):
    """RandomPositions on the temporal source: a mirrored flow crop has its x channels negated
    (y never), and every window, the last included, is drawn."""
    cfg = tiny_stream_config(tmp_path, "streams.temporal.L=2", "streams.temporal.mean_subtraction=false")
    _, source, _ = stream_parts(cfg, open_cache(cfg), LISTS, "temporal")
    data = RandomPositions(source, LISTS.train, crop_size=cfg.train.crop_size, samples_per_video=1)
    torch.manual_seed(0)
    positions, x_signs = set(), set()
    for _ in range(60):
        stack = data[0][0].numpy()
        first_x = float(stack[0, 0, 0])
        s = next(t for t in range(FRAMES - 1) if abs(abs(first_x) - abs(pixels(fwd_value(t, 0)))) < 1e-4)
        positions.add(s)
        x_signs.add(bool(np.sign(first_x) == np.sign(pixels(fwd_value(s, 0)))))
        for k in range(2):  # the y channels are the stored y fields, unchanged whether flipped or not
            np.testing.assert_allclose(stack[2 * k + 1], pixels(fwd_value(s + k, 1)), atol=1e-4)
            np.testing.assert_allclose(np.abs(stack[2 * k]), abs(pixels(fwd_value(s + k, 0))), atol=1e-4)
    assert x_signs == {True, False}, "in 60 draws, some crops are mirrored (x negated) and some are not"
    assert positions == set(range(FRAMES - 2)), "every window of 3 frames is drawn, the last one too"


class InputRecorder(nn.Module):
    """A stand-in network that keeps every batch it is given (a stream net's ``heads`` included)."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(1, len(LISTS.classes))])
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.heads[0](x[:, :1, 0, 0])


@pytest.mark.parametrize("multiscale", [None, 0.5], ids=["one_scale", "multiscale"])
def test_the_training_loop_draws_the_configured_crops_samples_and_scales(tmp_path, multiscale):
    """train_stream with the config's train section: samples_per_video stacks of crop_size px per
    epoch; with train.multiscale=[0.5] each crop is half the 72 px side, resized to 64 px, so its
    displacements grow by 64/36."""
    fwd = np.empty((FRAMES - 1, 2, H, W), np.uint8)
    fwd[:, 0], fwd[:, 1] = 140, 200
    cfg = tiny_stream_config(tmp_path, "streams.temporal.L=2", "streams.temporal.mean_subtraction=false",
                             "train.samples_per_video=3", "train.batch_size=2", "train.runtime.resume=false",
                             f"train.multiscale={[multiscale] if multiscale else 'null'}", fields=(fwd, fwd))
    _, source, _ = stream_parts(cfg, open_cache(cfg), LISTS, "temporal")
    model = InputRecorder()
    train_stream(model, source, LISTS.train, train_cfg=cfg.train, lr=0.0, epochs=1,
                 checkpoint=tmp_path / "r.pt", device=torch.device("cpu"), seed=0,
                 on_epoch=lambda stats: None, settings={}, progress=False)
    seen = torch.cat(model.seen).numpy()
    assert seen.shape == (3, 4, 64, 64), "samples_per_video stacks of 2L channels, crop_size px"
    scale = 64 / 36 if multiscale else 1.0
    np.testing.assert_allclose(seen[:, 1::2], pixels(200) * scale, rtol=1e-5, err_msg="y displacements")
    np.testing.assert_allclose(np.abs(seen[:, 0::2]), pixels(140) * scale, rtol=1e-5,
                               err_msg="x displacements")


class Summaries:
    """A run log that keeps the summaries (the test stage's accuracies) and the artefacts."""

    def __init__(self) -> None:
        self.summary: dict[str, float] = {}
        self.artifacts: dict[str, tuple[str, list[Path]]] = {}

    def set_summary(self, metrics) -> None:
        self.summary |= metrics

    def log_artifact(self, paths, name, type) -> None:
        self.artifacts[name] = (type, [paths] if isinstance(paths, str | Path) else list(paths))


def protocols_used(monkeypatch) -> list[TestProtocol]:
    """The test protocols that score videos from now on, in call order (they still score)."""
    calls, score = [], TestProtocol.score

    def recording(protocol, *args):
        calls.append(protocol)
        return score(protocol, *args)

    monkeypatch.setattr(TestProtocol, "score", recording)
    return calls


def test_the_test_stage_scores_every_subset_with_the_configured_protocol(tmp_path, monkeypatch):
    """run_test hands the test protocol cfg.test's positions and crops and the training crop size, for
    the train, validation and test videos, and writes each subset's scores."""
    cfg = tiny_stream_config(tmp_path, "test.num_positions=4", "test.crops=10", "streams.temporal.L=2")
    videos = [Video("v", Path("v.avi"), 1, None)]
    lists = SplitLists(classes=LISTS.classes, train=videos, test=videos, val=videos)
    _, _, model = stream_parts(cfg, open_cache(cfg), lists, "temporal")
    RunDir(cfg.paths.output_dir).checkpoint("temporal").parent.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "settings": training_settings(cfg, "temporal", cache_fingerprint(cfg)),
                "epoch": cfg.streams.temporal.epochs}, RunDir(cfg.paths.output_dir).checkpoint("temporal"))
    calls = protocols_used(monkeypatch)
    run_log = Summaries()
    stage.run_test(cfg, context_of(cfg, lists), "temporal", run_log)
    assert [(c.num_positions, c.crops, c.crop_size) for c in calls] == [(4, 10, 64)] * 3
    for subset in ("train", "val", "test"):
        scores = Scores.load(RunDir(tmp_path).scores("temporal", subset))
        assert scores.video_ids.tolist() == ["v"] and scores.labels.tolist() == [1], subset
        assert f"{subset}/accuracy" in run_log.summary
    # the stage logs its train and test score files itself, as the run's one artefact
    logged = [RunDir(tmp_path).scores("temporal", subset) for subset in ("train", "test")]
    assert run_log.artifacts == {f"{cfg.name}-temporal-scores": ("scores", logged)}


def lrn_after_conv(block: nn.Sequential) -> bool:
    return any(isinstance(m, nn.LocalResponseNorm) for m in block)


def test_both_streams_built_from_a_config_get_their_own_architecture_options(tmp_path):
    """The paper's CNN-M-2048 per stream, as stream_parts builds it from the composed config:
    the spatial net takes 3 channels with LRN after conv1 and conv2, the temporal net 2L channels
    with no LRN after conv2; each has its stream's dropout, the training crop's size and one head
    of the task's classes."""
    cfg = tiny_stream_config(tmp_path, "streams.temporal.L=6",
                             "streams.spatial.dropout=0.3", "streams.temporal.dropout=0.8")
    nets = {stream: stream_parts(cfg, open_cache(cfg), LISTS, stream)[2] for stream in ("spatial", "temporal")}
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


def test_validation_scores_with_the_test_protocol_cut_to_few_centre_crops_and_testing_checks_settings(
        tmp_path, monkeypatch):
    """run_train validates every epoch with the test protocol (its batch size, the training crop size)
    cut to train.runtime.val_positions positions and the centre crop; the test stage then refuses the
    checkpoint for a config with other training settings, by the same check as resuming."""
    overrides = ("test.num_positions=4", "test.crops=10", "test.batch_size=3", "train.runtime.val_positions=2",
                 "streams.temporal.L=2", "streams.temporal.epochs=1", "train.batch_size=1", "train.samples_per_video=1",
                 "train.runtime.resume=false")
    cfg = tiny_stream_config(tmp_path, *overrides)
    videos = [Video("v", Path("v.avi"), 1, None)]
    lists = SplitLists(classes=LISTS.classes, train=videos, test=videos, val=videos)
    calls = protocols_used(monkeypatch)
    run_log = Summaries()
    run_log.log = lambda metrics: None
    stage.run_train(cfg, context_of(cfg, lists), "temporal", run_log)
    assert [(c.num_positions, c.crops, c.crop_size, c.batch_size, c.progress) for c in calls] == [(2, 1, 64, 3, False)]
    other = tiny_config(tmp_path, *overrides, "streams.temporal.dropout=0.7")
    with pytest.raises(CheckpointMismatchError, match=r"(?s)other settings than the config's.*stream\.dropout.*"
                                                      r"Run stage=train with these settings first"):
        stage.run_test(other, context_of(other, lists), "temporal", run_log)
