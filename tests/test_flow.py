"""Flow estimators' shape/sign contract and uint8 quantisation."""

import numpy as np
import pytest

from twostream.flow import ESTIMATORS, dequantize, get_estimator, quantize

PARAMS = {
    "farneback": dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2),
    "dis": dict(preset="medium"),
}


def test_every_estimator_has_test_params():
    assert set(PARAMS) == set(ESTIMATORS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_shift_right_and_down_gives_positive_u_and_v(name, textured_image):
    # nxt is prev moved 3 px right and 2 px down, so nxt[y + 2, x + 3] == prev[y, x]: u = +3, v = +2.
    prev = textured_image
    nxt = np.roll(np.roll(prev, 3, axis=1), 2, axis=0)
    est = get_estimator(name, **PARAMS[name])
    flow = est(np.stack([prev, prev]), np.stack([nxt, prev]))
    assert flow.shape == (2, 2, *prev.shape[:2]) and flow.dtype == np.float32
    inner = (slice(16, -16), slice(16, -16))  # away from the wrapped borders
    assert np.median(flow[0, 0][inner]) == pytest.approx(3.0, abs=0.25)
    assert np.median(flow[0, 1][inner]) == pytest.approx(2.0, abs=0.25)
    # identical frames: no motion
    assert np.abs(flow[1][:, inner[0], inner[1]]).mean() < 0.1


def test_grey_input_matches_rgb_contract(textured_image):
    est = get_estimator("dis", **PARAMS["dis"])
    grey = textured_image[..., 0]
    flow = est(grey[None], np.roll(grey, 3, axis=1)[None])
    assert flow.shape == (1, 2, *grey.shape)


def test_unknown_estimator_names_the_choices():
    with pytest.raises(ValueError, match="dis, farneback"):
        get_estimator("brox")


def test_quantisation_round_trip_within_half_a_step():
    bound = 20.0
    rng = np.random.default_rng(0)
    flow = rng.uniform(-bound, bound, (5, 2, 16, 16)).astype(np.float32)
    q = quantize(flow, bound)
    assert q.dtype == np.uint8
    step = 2 * bound / 255
    assert np.abs(dequantize(q, bound) - flow).max() <= step / 2 + 1e-5


def test_quantisation_clips_and_maps_ends_exactly():
    bound = 10.0
    q = quantize(np.array([-50.0, -10.0, 0.0, 10.0, 50.0]), bound)
    assert q.tolist() == [0, 0, 128, 255, 255]  # 0 maps to round(127.5) = 128 (banker's rounding to even)
    assert dequantize(np.array([0, 255], np.uint8), bound).tolist() == [-10.0, 10.0]


def test_quantisation_rejects_non_positive_bound():
    with pytest.raises(ValueError, match="bound"):
        quantize(np.zeros(3), 0)
