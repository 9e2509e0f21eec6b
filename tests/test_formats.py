"""Versioned artefacts (docs/formats.md, "Format versions"): each kind's current file round-trips,
an old one (written here as the code before versions wrote it) is upgraded by its one step or
refused naming the file and the fix, a newer one is refused; and the fingerprint rule (a
``runtime`` change counts for neither the cache nor a checkpoint, a setting change for both)."""

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
from omegaconf import OmegaConf
from test_call_sites import LISTS, composed, context_of, tiny_stream_config

from twostream.cache import cache_fingerprint, open_cache, usable_lists
from twostream.cache.store import CacheMismatchError, FlowCache, source_signature
from twostream.data.splits import SplitLists, Video
from twostream.fingerprint import ArtefactFormatError, counted
from twostream.fusion import SvmFusion, fit_svm_fusion
from twostream.rundir import RunDir
from twostream.scores import Scores
from twostream.tracking import Tracker  # Tracker(None): a RunLog that records nothing
from twostream.train import stage
from twostream.train.loop import CheckpointMismatchError

ONE_EPOCH = ("streams.temporal.L=2", "streams.temporal.epochs=1", "train.runtime.validate=false")


def run_train(cfg) -> None:
    """The train stage of the temporal stream on LISTS, as the pipeline runs it (a RunLog recording nothing)."""
    stage.run_train(cfg, context_of(cfg, LISTS), "temporal", Tracker(None))


def trained_state(cfg) -> dict:
    """The temporal checkpoint as the test stage reads it."""
    return stage.trained_state(cfg, "temporal", RunDir(cfg.paths.output_dir), cache_fingerprint(cfg))


def training_settings(cfg) -> dict:
    return stage.training_settings(cfg, "temporal", cache_fingerprint(cfg))


def trained(tmp_path: Path, *overrides: str):
    """A config and the temporal checkpoint the train stage wrote for it (one epoch, one video)."""
    cfg = tiny_stream_config(tmp_path, *ONE_EPOCH, *overrides)
    run_train(cfg)
    return cfg, RunDir(cfg.paths.output_dir).checkpoint("temporal")


def recomposed(tmp_path: Path, *overrides: str):
    """The config :func:`trained` used with ``overrides`` added (its cache and checkpoint left as they are)."""
    return composed(f"cache.path={tmp_path / 'c.zarr'}", "cache.backward=true", "cache.flow_codec.name=zstd",
                    "cache.flow_codec.level=3", "model.conv_widths=[8,16,16,16,16]", "model.fc_widths=[32,16]",
                    "model.norm=lrn", "train.crop_size=64", f"paths.output_dir={tmp_path}", *ONE_EPOCH, *overrides)


def as_written_before_versions(path: Path) -> dict:
    """Rewrite the checkpoint at ``path`` as the code before versions wrote it: no ``format``, and
    settings without ``stream.trainable`` when ``all`` nor ``train.keep`` when ``last``."""
    state = torch.load(path, weights_only=False)
    del state["format"]
    settings = state["settings"]
    if settings["stream"]["trainable"] == "all":
        del settings["stream"]["trainable"]
    if settings["train"]["keep"] == "last":
        del settings["train"]["keep"]
    torch.save(state, path)
    return state


# -- checkpoints ---------------------------------------------------------------------------------

def test_a_checkpoint_carries_its_format_and_the_test_stage_reads_it(tmp_path):
    cfg, path = trained(tmp_path)
    state = torch.load(path, weights_only=False)
    assert state["format"] == 1
    assert state["settings"]["stream"]["trainable"] == "all" and state["settings"]["train"]["keep"] == "last"
    read = trained_state(cfg)
    assert all(torch.equal(read["model"][k], v) for k, v in state["model"].items())


def test_a_checkpoint_from_before_versions_is_upgraded_to_the_defaults_it_was_made_with(tmp_path):
    cfg, path = trained(tmp_path)
    old = as_written_before_versions(path)
    assert "trainable" not in old["settings"]["stream"] and "keep" not in old["settings"]["train"]
    read = trained_state(cfg)  # testing it: read through the 0 -> 1 step
    assert read["settings"] == training_settings(cfg)
    assert all(torch.equal(read["model"][k], v) for k, v in old["model"].items())
    # the step restores what it was trained with (all layers), not whatever the config asks for now
    assert recomposed(tmp_path).streams.temporal.trainable == "all"
    with pytest.raises(CheckpointMismatchError, match="stream.trainable: checkpoint has 'all', config asks for 'last'"):
        trained_state(recomposed(tmp_path, "streams.temporal.trainable=last"))
    run_train(cfg)  # resuming it: the same step (nothing left to train)


def test_a_checkpoint_without_settings_or_from_a_newer_twostream_is_refused_with_the_fix(tmp_path):
    cfg, path = trained(tmp_path)
    state = torch.load(path, weights_only=False)
    torch.save({k: v for k, v in state.items() if k not in ("format", "settings")}, path)  # before 2026-11-28
    with pytest.raises(ArtefactFormatError, match=r"temporal\.pt: cannot read this checkpoint of format 0 .*"
                                                  r"no training settings.*stage=train train\.runtime\.resume=false"):
        trained_state(cfg)
    without = {k: v for k, v in state.items() if k != "format"} | {"settings": {"stream": {"L": 2}}}
    torch.save(without, path)  # not a file the train stage ever wrote: refused, not a KeyError
    with pytest.raises(ArtefactFormatError, match=r"temporal\.pt: cannot read .* it has no 'train'\. Train again"):
        trained_state(cfg)
    torch.save(state | {"format": 2}, path)
    for read in (lambda: trained_state(cfg), lambda: run_train(cfg)):
        with pytest.raises(ArtefactFormatError, match=r"temporal\.pt: checkpoint format 2 was written by a newer "
                                                      r"twostream; this one reads formats up to 1"):
            read()


# -- score files ---------------------------------------------------------------------------------

SCORES = Scores(np.array(["a/v1", "b/v2"]), np.array([0, 1]), np.array([[0.7, 0.3], [0.4, 0.6]], np.float32),
                np.array(["a", "b"]))


def same(a: Scores, b: Scores) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("video_ids", "labels", "scores", "classes"))


def test_a_score_file_carries_its_format_and_round_trips(tmp_path):
    SCORES.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as f:
        assert int(f["format"]) == 1
    assert same(Scores.load(tmp_path / "s.npz"), SCORES)


def test_a_score_file_from_before_versions_is_read_and_one_without_its_arrays_refused(tmp_path):
    old = tmp_path / "spatial_test.npz"
    np.savez(old, video_ids=SCORES.video_ids, labels=SCORES.labels, scores=SCORES.scores, classes=SCORES.classes)
    assert same(Scores.load(old), SCORES)
    np.savez(old, video_ids=SCORES.video_ids, labels=SCORES.labels, scores=SCORES.scores)
    with pytest.raises(ArtefactFormatError, match=r"spatial_test\.npz: cannot read this score file of format 0 .*"
                                                  r"no classes.*stage=test"):
        Scores.load(old)


def test_a_score_file_from_a_newer_twostream_is_refused(tmp_path):
    np.savez(tmp_path / "s.npz", video_ids=SCORES.video_ids, labels=SCORES.labels, scores=SCORES.scores,
             classes=SCORES.classes, format=2)
    with pytest.raises(ArtefactFormatError, match=r"s\.npz: score file format 2 was written by a newer twostream"):
        Scores.load(tmp_path / "s.npz")


# -- the fusion SVM ------------------------------------------------------------------------------

def fitted() -> tuple[SvmFusion, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 6)
    streams = [np.eye(3)[labels] + rng.random((18, 3)) for _ in range(2)]
    return fit_svm_fusion(streams, labels, C_grid=[0.1, 1.0], cv_folds=3, max_iter=1000, seed=0, tol=0.1,
                          C_search="full"), streams


def test_the_svm_carries_its_format_and_round_trips(tmp_path):
    svm, streams = fitted()
    svm.save(tmp_path / "svm.pkl", ["spatial", "temporal"])
    assert pickle.loads((tmp_path / "svm.pkl").read_bytes())["format"] == 1
    loaded, order = SvmFusion.load(tmp_path / "svm.pkl")
    assert order == ["spatial", "temporal"] and loaded.C_tried == [0.1, 1.0] and loaded.C == svm.C
    assert loaded.selection_accuracy == svm.selection_accuracy and loaded.C_accuracies == svm.C_accuracies
    np.testing.assert_array_equal(loaded.decision(streams), svm.decision(streams))


def test_an_svm_from_before_versions_is_read_with_no_choice_of_C_recorded(tmp_path):
    svm, streams = fitted()
    with (tmp_path / "svm.pkl").open("wb") as f:  # as the fuse stage wrote it on 2026-11-28
        pickle.dump({"svm": svm.svm, "C": svm.C, "streams": ["spatial", "temporal"],
                     "sklearn_version": sklearn.__version__}, f)
    loaded, order = SvmFusion.load(tmp_path / "svm.pkl")
    assert order == ["spatial", "temporal"] and loaded.C == svm.C
    assert (loaded.selection_accuracy, loaded.C_tried, loaded.C_accuracies) == (None, [], [])
    np.testing.assert_array_equal(loaded.decision(streams), svm.decision(streams))


def test_an_svm_from_a_newer_twostream_is_refused_with_the_fix(tmp_path):
    svm, _ = fitted()
    svm.save(tmp_path / "svm.pkl", ["spatial"])
    state = pickle.loads((tmp_path / "svm.pkl").read_bytes())
    (tmp_path / "svm.pkl").write_bytes(pickle.dumps(state | {"format": 2}))
    with pytest.raises(ArtefactFormatError, match=r"svm\.pkl: fusion SVM format 2 was written by a newer "
                                                  r"twostream.*rerun stage=fuse"):
        SvmFusion.load(tmp_path / "svm.pkl")


# -- the flow cache ------------------------------------------------------------------------------

def small_cache(folder: Path) -> list[Video]:
    """A cache ``folder/c.zarr`` as the current code writes it, of two videos of 6 and 2 frames."""
    cache = FlowCache(folder / "c.zarr", {"bound": 20}, writable=True)
    rng = np.random.default_rng(0)
    videos = []
    for k, length in enumerate((6, 2)):
        videos.append(Video(f"v{k}", folder / f"v{k}.avi", 0, None))
        videos[-1].path.write_bytes(b"x" * (k + 1))
        cache.write_video(f"v{k}", rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8),
                          rng.integers(0, 256, (length - 1, 2, 8, 8), dtype=np.uint8),
                          source=source_signature(videos[-1].path))
    return videos


def edit_attrs(directory: Path, **changes) -> None:
    """Change a Zarr group's attributes on disk (``None`` deletes one)."""
    meta = json.loads((directory / "zarr.json").read_text())
    for key, value in changes.items():
        meta["attributes"].pop(key, None) if value is None else meta["attributes"].update({key: value})
    (directory / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("written", ["2026-11-28", "2026-12-03", "2026-12-06"])
def test_a_format_2_cache_of_every_vintage_reads_as_format_3(tmp_path, written):
    """Format 2 was written by three extract stages: without num_frames and frame_indices, with
    num_frames only, with both (the code before format 3). Each reads as format 3 records it."""
    videos = small_cache(tmp_path)
    edit_attrs(tmp_path / "c.zarr", format=2)
    for video in (p for p in (tmp_path / "c.zarr" / "videos").iterdir() if p.is_dir()):
        if written < "2026-12-06":
            edit_attrs(video, frame_indices=None)
        if written < "2026-12-03":
            edit_attrs(video, num_frames=None)
    cache = FlowCache(tmp_path / "c.zarr", {"bound": 20})
    assert cache.attrs("v0")["num_frames"] == 6 and cache.num_frames("v0") == 6
    assert cache.frame_indices("v0").tolist() == list(range(6)) and cache.read_frames("v0", 5).shape == (1, 8, 8, 3)
    # the call site: usable_lists leaves out the video too short for an L=2 stack (3 frames)
    kept, left_out = usable_lists(SplitLists(["a"], videos, videos), cache, min_frames=3)
    assert [v.id for v in kept.train] == ["v0"] and left_out == {"v1": "2 frames, fewer than the 3 a flow stack "
                                                                        "of this run needs"}
    FlowCache(tmp_path / "c.zarr", {"bound": 20}, writable=True)  # extraction goes on in it
    assert json.loads((tmp_path / "c.zarr" / "zarr.json").read_text())["attributes"]["format"] == 2


def test_a_new_cache_is_format_3_and_older_or_newer_formats_are_refused_with_the_fix(tmp_path):
    small_cache(tmp_path)
    assert json.loads((tmp_path / "c.zarr" / "zarr.json").read_text())["attributes"]["format"] == 3
    for version, made_by in ((1, "an older"), (4, "a newer")):
        edit_attrs(tmp_path / "c.zarr", format=version)
        for opening in (lambda: FlowCache(tmp_path / "c.zarr", {"bound": 20}), lambda: FlowCache.open(tmp_path / "c.zarr")):
            with pytest.raises(CacheMismatchError, match=f"format: cache has {version} \\({made_by} twostream\\), "
                                                         "this version reads formats 2 to 3"):
                opening()


# -- the fingerprint rule ------------------------------------------------------------------------

def test_counted_takes_each_entry_whole_without_its_runtime_at_any_depth():
    cfg = OmegaConf.create({"a": {"x": 1, "runtime": {"device": "cuda"}, "b": {"runtime": 2, "y": "${..x}"}},
                            "seed": 4})
    assert counted(cfg, {"f": "a", "n": {"seed": "seed", "none": "no.such.key"}}) == {
        "f": {"x": 1, "b": {"y": 1}}, "n": {"seed": 4, "none": None}}
    flow = OmegaConf.to_container(composed("flow=tvl1").flow, resolve=True)
    assert counted(composed("flow=tvl1"), {"f": "flow"})["f"] == {k: v for k, v in flow.items() if k != "runtime"}


RUNTIME_ONLY = ("flow.runtime.cpu_chunk=7", "train.runtime.num_workers=3", "train.runtime.val_positions=5")


def test_a_runtime_change_counts_for_neither_the_cache_nor_the_checkpoint(tmp_path):
    cfg, _ = trained(tmp_path, "flow=tvl1")
    runtime = recomposed(tmp_path, "flow=tvl1", *RUNTIME_ONLY)
    assert cache_fingerprint(runtime) == cache_fingerprint(cfg)
    assert training_settings(runtime) == training_settings(cfg)
    open_cache(runtime)  # the cache opens
    trained_state(runtime)  # the checkpoint is tested


@pytest.mark.parametrize("setting", ["flow.params.tau=0.3", "train.lr_gamma=0.5", "+train.added_later=1"])
def test_a_setting_change_counts_for_both_where_it_belongs(tmp_path, setting):
    cfg, _ = trained(tmp_path, "flow=tvl1")
    changed = recomposed(tmp_path, "flow=tvl1", setting)
    key = setting.lstrip("+").split("=")[0]
    assert training_settings(changed) != training_settings(cfg)
    with pytest.raises(CheckpointMismatchError, match=f"{re.escape(key)}: checkpoint has"):
        trained_state(changed)
    if key.startswith("flow."):
        assert cache_fingerprint(changed) != cache_fingerprint(cfg)
        with pytest.raises(CacheMismatchError, match="params.tau: cache has 0.25, config asks for 0.3"):
            open_cache(changed)
    else:
        assert cache_fingerprint(changed) == cache_fingerprint(cfg)

