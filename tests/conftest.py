"""Shared fixtures: paths to the real data in ../shared/data and small synthetic images."""

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
