"""Shared fixtures: paths to the real data in ../shared/data and small synthetic images.

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

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


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
