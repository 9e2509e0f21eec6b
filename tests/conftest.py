"""Shared by the test files: the real data in ../shared/data, small synthetic images, tiny experiment
configs and the helpers that run the command line as a user would and check what a run wrote
(test files import these: `from conftest import TINY, twostream`).

Call sites checked (issue 27: a helper tested, the place that calls it not; each one has a test that
fails on a wrong argument there, most also a planted bug in tests/mutants.py):
- data: the generator seed reaches every draw of every clip and background (test_call_sites); the
  validation split's seed and fraction (test_validation); merged label sets (test_datasets_multitask).
- flow: every conf/flow preset builds an estimator that finds a known shift (test_flow).
- cache: backward field t is the estimator's flow t+1 -> t (test_cache_extract); the cache's own bound
  (test_cache); settings in the fingerprint (test_config, test_flow).
- inputs: bidirectional, stacking and mean subtraction reach the stream's source from the config, and
  the backward half-window it reads (test_call_sites, test_sources); training samples' flow flips,
  windows, crop size, samples per video and multiscale as the loop builds them (test_call_sites).
- models: both streams built from a config (channels, conv2's LRN, dropout, crop size, heads;
  test_call_sites); cross-modality init through build_model (test_models); last-layer freezing
  through stream_model (test_train).
- train/test: lr schedule and logged metrics (test_train_metrics); seeding before the net is built
  (test_determinism); validation, never test, videos per epoch (test_validation); the test stage's
  positions, crops and subsets (test_call_sites); the test protocol (test_evaluate).
- fusion, predict, sweeps: C chosen on validation, the averaged streams (test_fusion); predict's codec
  and stream order (test_predict); a trial's sampled values reach its config, its objective is its
  validation accuracy (test_sweep).
Not covered: the per-epoch validation's positions and crops (run_train's validate: a cost, not a result).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.svm import LinearSVC

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


def load_script(relative: str, name: str | None = None):
    """An experiment's script (``experiments/...py``, outside the package) loaded from its path, as
    module ``name`` (its file's stem by default), registered in sys.modules: its dataclasses, and
    the scripts that load it in turn, look it up there."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def user_env(**extra: str) -> dict[str, str]:
    """This process's environment as a user's shell has it: no W&B settings of the test run (the config's
    tracking mode decides), this checkout's twostream first on the path; ``extra`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return env | {"PYTHONPATH": str(REPO)} | extra


# The smallest synthetic set a whole run works on: 12 classes x 3 groups of one 16-frame clip.
TINY_DATASET = [
    "dataset.generator.groups_per_class=3", "dataset.generator.clips_per_group=1",
    "dataset.generator.test_groups=1", "dataset.generator.num_frames=16",
]
# The quickstart on it, two epochs a stream: a whole extract-train-test-fuse run in seconds.
TINY = [
    "+experiment=quickstart", "name=tiny", "progress=false", *TINY_DATASET,
    "streams.spatial.epochs=2", "streams.temporal.epochs=2", "streams.temporal.L=5",
    "train.samples_per_video=2", "test.num_positions=3",
]


def twostream(*args: str, cwd: Path, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``python [-m LAUNCHER] -m twostream ARGS`` as a user would, from ``cwd``."""
    return subprocess.run([sys.executable, *launcher, "-m", "twostream", *args], cwd=cwd, env=user_env(),
                          capture_output=True, text=True, timeout=300)


def assert_results_match_score_files(output_dir: Path) -> None:
    """results.json's accuracies, recomputed from the score files the test and fuse stages wrote.

    Each method's accuracy is the argmax of its test score file against the labels; the average
    fusion's file holds the mean of the streams' files, and the SVM fusion's the decisions of a
    Crammer-Singer LinearSVC fitted here on the L2-normalised score files of the videos the fuse
    stage fitted it on (results.json's svm_fit_on) with the C it chose.
    """
    results = json.loads((output_dir / "results.json").read_text())
    cfg = OmegaConf.load(output_dir / ".hydra/config.yaml")
    streams = list(cfg.streams)

    def scores(name: str, subset: str = "test") -> np.ndarray:
        with np.load(output_dir / f"scores/{name}_{subset}.npz") as f:
            return f["scores"]

    def features(subset: str) -> np.ndarray:
        # each stream's scores L2-normalised, side by side; in float32 as stored, since the
        # near-uniform scores of a barely trained net leave the SVM close to ties
        per_stream = [scores(s, subset) for s in streams]
        return np.hstack([s / np.linalg.norm(s, axis=1, keepdims=True) for s in per_stream])

    with np.load(output_dir / f"scores/{streams[0]}_test.npz") as f:
        labels = f["labels"]
    with np.load(output_dir / f"scores/{streams[0]}_{results['svm_fit_on'] or 'train'}.npz") as f:
        fit_labels = f["labels"]  # of the videos the SVM was fitted on
    if len(streams) == 1:  # a single stream is not fused: its own accuracy is all there is
        assert results["accuracy"] == pytest.approx({streams[0]: float((scores(streams[0]).argmax(1) == labels).mean())})
        assert results["svm_C"] is None and not (output_dir / "scores/fusion_average_test.npz").exists()
        return
    np.testing.assert_allclose(scores("fusion_average"), np.mean([scores(s) for s in streams], axis=0), rtol=1e-6,
                               err_msg="the average fusion's scores are not the mean of the streams' scores")
    svm = LinearSVC(multi_class="crammer_singer", C=results["svm_C"], tol=cfg.fusion.svm.tol, max_iter=cfg.fusion.svm.max_iter,
                    random_state=cfg.seed).fit(features(results["svm_fit_on"]), fit_labels)
    decision = svm.decision_function(features("test"))
    if decision.ndim == 1:  # two classes: scikit-learn gives class 1's margin only
        decision = np.stack([-decision, decision], axis=1)
    np.testing.assert_allclose(scores("fusion_svm"), decision, rtol=1e-5, atol=1e-6,
                               err_msg="the SVM fusion's scores are not the refitted SVM's decisions")
    expected = {m: float((scores(m).argmax(1) == labels).mean()) for m in [*streams, "fusion_average", "fusion_svm"]}
    assert results["accuracy"] == pytest.approx(expected), "results.json disagrees with the score files"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real split lists and clips); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not present (it ships beside the repo, not in it)")
    return SHARED_DATA


@pytest.fixture
def textured_image() -> np.ndarray:
    """A deterministic 96x128 RGB image with texture at several scales (flow needs texture)."""
    rng = np.random.default_rng(7)
    layers = [cv2.resize(rng.random((96 // s, 128 // s), np.float32), (128, 96), interpolation=cv2.INTER_CUBIC)
              for s in (2, 4, 8)]
    grey = sum(layers) / len(layers)
    rgb = np.stack([grey, np.roll(grey, 5, axis=1), np.roll(grey, 9, axis=0)], axis=-1)
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min())
    return (rgb * 255).astype(np.uint8)


@pytest.fixture
def one_torch_thread():
    """Run the test with one intra-op torch thread, then restore the setting.

    On a busy 2-core machine OpenMP's spin-waiting makes multi-threaded eager torch 10-100x slower
    (measured for tvl1); these tests check results, which do not need the second thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
