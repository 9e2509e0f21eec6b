"""The stream input sources read from a real (small) cache, against an independent reading of its arrays.

``FlowStackSource.load`` must give what ``stack_flow`` gives on the whole video's fields dequantised
here by the cache's documented mapping (pixels = q * 2 * bound / 255 - bound), at every position,
including the bi-directional stacks that need the window's backward fields.
"""

import numpy as np
import pytest

from twostream.cache.store import FlowCache
from twostream.inputs.datasets import FlowStackSource, FrameSource
from twostream.inputs.stacking import stack_flow

BOUND = 20.0
FRAMES, H, W = 9, 10, 12  # 8 flow fields per direction
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's


@pytest.fixture
def cache(tmp_path) -> tuple[FlowCache, dict[str, np.ndarray]]:
    """A cache holding one video of random frames and random forward and backward flow."""
    rng = np.random.default_rng(5)
    # flow of up to +-2 px: trajectories move around without being thrown from border to border
    flow = rng.integers(128 - 13, 128 + 13, (2, FRAMES - 1, 2, H, W), dtype=np.uint8)
    arrays = {"frames": rng.integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8), "fwd": flow[0], "bwd": flow[1]}
    fingerprint = {"bound": BOUND, "backward": True}
    FlowCache(tmp_path / "c.zarr", fingerprint, writable=True).write_video(
        "v", arrays["frames"], arrays["fwd"], arrays["bwd"], source={"size": 1, "mtime_ns": 0})
    return FlowCache(tmp_path / "c.zarr", fingerprint), arrays


def pixels(q: np.ndarray) -> np.ndarray:
    """The documented mapping in float32, as the reader computes it (trajectories amplify rounding)."""
    return q.astype(np.float32) * np.float32(2 * BOUND / 255) - np.float32(BOUND)


@pytest.mark.parametrize("mean_subtraction", [False, True], ids=["plain", "mean_subtracted"])
@pytest.mark.parametrize("stacking", ["optical_flow", "trajectory"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "forward"])
def test_flow_stacks_at_every_position_equal_stack_flow_over_the_whole_video(cache, bidirectional, stacking,
                                                                            mean_subtraction):
    flow_cache, arrays = cache
    L = 4
    source = FlowStackSource(flow_cache, L, stacking, bidirectional, mean_subtraction)
    assert source.in_channels == 2 * L
    assert source.num_positions("v") == FRAMES - L, "windows of L+1 frames: the last one ends at the last frame"
    fwd, bwd = pixels(arrays["fwd"]), pixels(arrays["bwd"])
    for position in range(FRAMES - L):
        expected = stack_flow(fwd, position, L, stacking, flow_bwd=bwd, bidirectional=bidirectional,
                              mean_subtraction=mean_subtraction)
        np.testing.assert_allclose(
            source.load("v", position), expected, atol=1e-4,
            err_msg=f"the stack of frames {position}..{position + L} is not stack_flow of the video's fields"
                    + (" (bi-directional: backward fields of the window's first half, forward of its second)"
                       if bidirectional else ""))


def test_frames_at_the_first_and_last_position_are_normalised_rgb(cache):
    flow_cache, arrays = cache
    source = FrameSource(flow_cache)
    assert source.num_positions("v") == FRAMES and source.in_channels == 3
    for position in (0, FRAMES - 1):
        frame = arrays["frames"][position]
        expected = np.stack([(frame[..., c] / 255 - RGB_MEAN[c]) / RGB_STD[c] for c in range(3)])
        np.testing.assert_allclose(source.load("v", position), expected, rtol=1e-5, atol=1e-5,
                                   err_msg=f"frame {position}")
