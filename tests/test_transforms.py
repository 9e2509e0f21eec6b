"""Crops and flips of (C, H, W) inputs for training and the test protocol."""

import numpy as np

from twostream.data.transforms import hflip, protocol_crops


def test_flipping_a_flow_stack_mirrors_and_negates_only_x():
    rng = np.random.default_rng(2)
    stack = rng.normal(size=(6, 4, 5)).astype(np.float32)
    flipped = hflip(stack, is_flow=True)
    np.testing.assert_array_equal(flipped[0::2], -stack[0::2, :, ::-1])
    np.testing.assert_array_equal(flipped[1::2], stack[1::2, :, ::-1])
    np.testing.assert_array_equal(hflip(stack, is_flow=False), stack[:, :, ::-1])


def test_ten_crops_are_corners_centre_and_mirrors():
    x = np.arange(2 * 6 * 8, dtype=np.float32).reshape(2, 6, 8)
    crops = protocol_crops(x, 4, 10, is_flow=True)
    assert crops.shape == (10, 2, 4, 4)
    expected = [x[:, :4, :4], x[:, :4, 4:], x[:, 2:, :4], x[:, 2:, 4:], x[:, 1:5, 2:6]]
    for k, box in enumerate(expected):
        np.testing.assert_array_equal(crops[k], box)
        mirrored = box[:, :, ::-1].copy()
        mirrored[0] *= -1
        np.testing.assert_array_equal(crops[5 + k], mirrored)
    np.testing.assert_array_equal(protocol_crops(x, 4, 1, is_flow=False)[0], x[:, 1:5, 2:6])
