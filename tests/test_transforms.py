"""Crops and flips of (C, H, W) inputs for training and the test protocol."""

import numpy as np
import torch

from twostream.inputs.transforms import hflip, protocol_crops, random_crop_flip


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


def test_multiscale_crops_resize_and_scale_flow_with_the_image():
    flow = np.zeros((2, 64, 80), np.float32)
    flow[0], flow[1] = 2.0, -1.0  # uniform motion: 2 px right, 1 px up
    torch.manual_seed(0)
    for _ in range(10):
        crop = random_crop_flip(flow, 16, is_flow=True, scales=[0.5])  # a 32 px crop of the 64 px side
        assert crop.shape == (2, 16, 16)
        np.testing.assert_allclose(np.abs(crop[0]), 1.0)  # halved with the image, sign flipped or not
        np.testing.assert_allclose(crop[1], -0.5)
    rgb = np.full((3, 64, 80), 0.25, np.float32)
    np.testing.assert_allclose(random_crop_flip(rgb, 16, is_flow=False, scales=[0.5, 1.0]), 0.25)


def test_without_scales_the_crop_is_taken_at_the_input_size():
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    crop = random_crop_flip(x, 8, is_flow=False)
    assert crop.shape == (2, 8, 8) and sorted(crop.ravel()) == sorted(x.ravel())
