"""Crops and flips, and the network's shapes."""

import numpy as np
import pytest
import torch

from twostream.data.transforms import hflip, protocol_crops
from twostream.models.cnn_m import CNNM2048


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


@pytest.mark.parametrize("channels", [3, 20])
def test_cnn_m_2048_shapes_at_224(channels):
    model = CNNM2048(channels, 101, input_size=224, conv_widths=[96, 256, 512, 512, 512], fc_widths=[4096, 2048],
                     dropout=0.5, conv2_lrn=channels == 3, norm="lrn")
    assert model.features(torch.zeros(1, channels, 224, 224)).shape == (1, 512, 6, 6)  # as in Caffe's CNN-M
    assert model(torch.zeros(2, channels, 224, 224)).shape == (2, 101)
    assert model.features[0].weight.shape == (96, channels, 7, 7)
    lrn_count = sum(isinstance(m, torch.nn.LocalResponseNorm) for m in model.features)
    assert lrn_count == (2 if channels == 3 else 1)  # the temporal net has no LRN after conv2
