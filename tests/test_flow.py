"""Flow estimators' shape/sign contract, their configs, and uint8 quantisation."""

import colorsys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from twostream.cache import cache_fingerprint
from twostream.flow import ESTIMATORS, dequantize, estimator_kwargs, get_estimator, quantize
from twostream.flow.viz import flow_to_rgb

CONF = Path(__file__).resolve().parents[1] / "conf"
# small, quick settings where a method's defaults are slow (the contract does not depend on them)
PARAMS = {
    "farneback": dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2),
    "dis": dict(preset="medium"),
    "tvl1": dict(tau=0.25, lambda_=0.15, theta=0.3, scales=3, scale_step=0.5, warps=3, iterations=50,
                 epsilon=0.02, median_filter=5, device="cpu", compile=False),
    "opencv_tvl1": dict(tau=0.25, lambda_=0.15, theta=0.3, scales=3, warps=3, epsilon=0.01, inner_iterations=30,
                        outer_iterations=3, scale_step=0.5, gamma=0.0, median_filtering=5),
    "deepflow": dict(),
    "brox": dict(alpha=0.197, gamma=50.0, scale_factor=0.8, inner_iterations=5, outer_iterations=150,
                 solver_iterations=10),
}


def opencv_has_cuda() -> bool:
    return hasattr(cv2, "cuda_BroxOpticalFlow") and cv2.cuda.getCudaEnabledDeviceCount() > 0


def test_every_estimator_has_test_params():
    assert set(PARAMS) == set(ESTIMATORS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_shift_right_and_down_gives_positive_u_and_v(name, textured_image, one_torch_thread):
    if name == "brox" and not opencv_has_cuda():
        pytest.skip("brox needs OpenCV built with CUDA and a GPU; this OpenCV has neither")
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
    with pytest.raises(ValueError, match="brox, deepflow, dis, farneback, opencv_tvl1, tvl1"):
        get_estimator("flownet")


@pytest.mark.skipif(opencv_has_cuda(), reason="this OpenCV has CUDA, so brox runs")
def test_brox_without_cuda_says_what_to_install():
    with pytest.raises(RuntimeError, match="OpenCV built with CUDA.*flow=tvl1"):
        get_estimator("brox", **PARAMS["brox"])


@pytest.mark.parametrize("config", sorted(p.stem for p in (CONF / "flow").glob("*.yaml")))
def test_every_flow_config_builds_an_estimator_that_finds_a_known_shift(config, textured_image, one_torch_thread):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        flow = compose(config_name="config", overrides=[f"flow={config}"]).flow
    assert flow.name in ESTIMATORS and (flow.batch_size == "auto" or flow.batch_size >= 1)
    if flow.name == "brox" and not opencv_has_cuda():
        pytest.skip("brox needs OpenCV built with CUDA and a GPU; this OpenCV has neither")
    kwargs = estimator_kwargs(flow)  # a misspelt or missing key raises in get_estimator
    if flow.name == "tvl1":  # the configured params, computed on this machine's CPU without compiling
        kwargs |= {"device": "cpu", "compile": False}
    est = get_estimator(flow.name, **kwargs)
    prev = textured_image[:64, :64]  # small: the configs' own (full-quality) settings are slow on big frames
    nxt = np.roll(np.roll(prev, 3, axis=1), 2, axis=0)  # 3 px right, 2 px down
    shift = est(prev[None], nxt[None])[0][:, 12:-12, 12:-12]
    median = np.median(shift, axis=(1, 2))
    assert median == pytest.approx([3.0, 2.0], abs=0.25), f"{config}: median flow {median}, expected (3, 2)"


def test_runtime_settings_do_not_change_the_cache_fingerprint():
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        on_cpu, on_gpu, other_flow = (
            cache_fingerprint(compose(config_name="config", overrides=["flow=tvl1", *extra]))
            for extra in (["flow.runtime.device=cpu"], ["flow.runtime.device=cuda", "flow.runtime.compile=false"],
                          ["flow.params.warps=3"]))
    assert on_cpu == on_gpu and on_cpu != other_flow


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


def test_flow_colours_follow_the_hsv_wheel() -> None:
    # Direction -> hue (right = red, down = 90 degrees, ...), magnitude / max -> value.
    angles = np.deg2rad([0, 90, 180, 270, 45, 0])
    magnitudes = np.array([2.0, 2.0, 2.0, 2.0, 1.0, 0.0])
    flow = np.stack([magnitudes * np.cos(angles), magnitudes * np.sin(angles)])[:, None, :].astype(np.float32)
    image = flow_to_rgb(flow)[0]
    for pixel, angle, magnitude in zip(image, np.rad2deg(angles), magnitudes, strict=True):
        expected = np.array(colorsys.hsv_to_rgb(angle / 360, 1.0, magnitude / 2.0)) * 255
        np.testing.assert_allclose(pixel, expected, atol=3)  # OpenCV's hue has 2-degree steps
    assert tuple(image[0]) == (255, 0, 0) and tuple(image[-1]) == (0, 0, 0)
    # A shared scale: half the given maximum is half as bright.
    assert flow_to_rgb(flow, max_magnitude=4.0)[0, 0, 0] == 128
