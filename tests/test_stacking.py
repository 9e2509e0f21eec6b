"""Flow stacking (optical flow, trajectory, bi-directional, mean subtraction) against independent code."""

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from twostream.inputs.stacking import stack_flow


def smooth_flow(rng, fields=6, h=9, w=11, scale=2.0):
    noise = rng.normal(size=(fields, 2, h, w))
    return (scale * gaussian_filter(noise, sigma=(0, 0, 2, 2)) / 0.2).astype(np.float32)


def sample_one(field, x, y):
    """Bilinear value of a (2, H, W) field at one point, position clamped to the image (a plain loop)."""
    _, h, w = field.shape
    x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    i, j = min(int(math.floor(y)), h - 2), min(int(math.floor(x)), w - 2)
    fy, fx = y - i, x - j
    return [(1 - fy) * ((1 - fx) * field[c, i, j] + fx * field[c, i, j + 1])
            + fy * ((1 - fx) * field[c, i + 1, j] + fx * field[c, i + 1, j + 1]) for c in range(2)]


def trajectory_by_loop(fields):
    """Per pixel: p_1 = p, sample d_k at p_k, p_{k+1} = p_k + d_k(p_k)."""
    k_count, _, h, w = fields.shape
    out = np.zeros((2 * k_count, h, w))
    for y in range(h):
        for x in range(w):
            px, py = float(x), float(y)
            for k in range(k_count):
                u, v = sample_one(fields[k], px, py)
                out[2 * k, y, x], out[2 * k + 1, y, x] = u, v
                px, py = px + u, py + v
    return out


def test_trajectory_matches_a_per_pixel_loop():
    flow = smooth_flow(np.random.default_rng(0))
    assert np.abs(flow).max() > 1.5  # trajectories really leave their start pixel
    stack = stack_flow(flow, 1, 4, mode="trajectory")
    np.testing.assert_allclose(stack, trajectory_by_loop(flow[1:5]), atol=1e-4)
    # the first field is sampled at the start pixel itself, as in optical-flow stacking
    np.testing.assert_allclose(stack[:2], flow[1], atol=1e-6)


def test_trajectory_equals_optical_flow_for_uniform_motion():
    flow = np.zeros((4, 2, 6, 6), np.float32)
    flow[:, 0], flow[:, 1] = 1.5, -0.5  # every pixel moves the same way: the path does not matter
    np.testing.assert_allclose(stack_flow(flow, 0, 4, "trajectory"), stack_flow(flow, 0, 4, "optical_flow"))


def test_bidirectional_channel_order_is_backward_then_forward_in_time():
    fields, h, w = 8, 3, 4
    fwd = np.zeros((fields, 2, h, w), np.float32)
    bwd = np.zeros_like(fwd)
    for k in range(fields):  # tag each field with its index and direction
        fwd[k, 0], fwd[k, 1] = 100 + k, 200 + k
        bwd[k, 0], bwd[k, 1] = -100 - k, -200 - k
    stack = stack_flow(fwd, 2, 4, flow_bwd=bwd, bidirectional=True)
    assert stack.shape == (8, h, w)
    # window of frames 2..6, middle frame 4: backward fields 2, 3 then forward fields 4, 5
    assert stack[:, 0, 0].tolist() == [-102, -202, -103, -203, 104, 204, 105, 205]


def test_bidirectional_trajectory_runs_outwards_from_the_middle_frame():
    rng = np.random.default_rng(1)
    fwd, bwd = smooth_flow(rng), smooth_flow(rng)
    stack = stack_flow(fwd, 1, 4, mode="trajectory", flow_bwd=bwd, bidirectional=True)
    forward = trajectory_by_loop(fwd[3:5])
    backward = trajectory_by_loop(bwd[1:3][::-1])  # from frame 3 back to 1: bwd[2] then bwd[1]
    np.testing.assert_allclose(stack[4:], forward, atol=1e-4)
    np.testing.assert_allclose(stack[:2], backward[2:], atol=1e-4)  # bwd[1] comes first in time
    np.testing.assert_allclose(stack[2:4], backward[:2], atol=1e-4)


def test_bidirectional_needs_even_L_and_backward_flow():
    flow = np.zeros((6, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="even L"):
        stack_flow(flow, 0, 3, flow_bwd=flow, bidirectional=True)
    with pytest.raises(ValueError, match="cache.backward=true"):
        stack_flow(flow, 0, 4, bidirectional=True)


@pytest.mark.parametrize("mode", ["optical_flow", "trajectory"])
def test_mean_subtraction_gives_zero_mean_fields(mode):
    flow = smooth_flow(np.random.default_rng(2)) + np.float32(3.0)
    stack = stack_flow(flow, 0, 5, mode=mode, mean_subtraction=True)
    np.testing.assert_allclose(stack.mean(axis=(1, 2)), 0, atol=1e-5)
    plain = stack_flow(flow, 0, 5, mode=mode)
    np.testing.assert_allclose(stack, plain - plain.mean(axis=(1, 2), keepdims=True), atol=1e-5)


def test_optical_flow_stacking_is_interleaved_slicing():
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(12, 2, 5, 6)).astype(np.float32)
    stack = stack_flow(flow, 3, 4)
    assert stack.shape == (8, 5, 6)
    for k in range(4):
        np.testing.assert_array_equal(stack[2 * k], flow[3 + k, 0])
        np.testing.assert_array_equal(stack[2 * k + 1], flow[3 + k, 1])


def test_stack_out_of_range_and_unknown_mode_are_refused():
    flow = np.zeros((5, 2, 4, 4), np.float32)
    with pytest.raises(IndexError, match="L=3"):
        stack_flow(flow, 3, 3)
    with pytest.raises(ValueError, match="unknown stacking mode"):
        stack_flow(flow, 0, 2, mode="sideways")
