"""TV-L1 in torch: recovers known motion on real frames, agrees with OpenCV's TV-L1, runs the same
compiled or eager, is deterministic and batch-independent on the CPU; and the known-motion pairs."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from twostream.data.video import read_frames
from twostream.flow import batch_pairs, get_estimator
from twostream.flow.groundtruth import (
    affine_flow,
    endpoint_error,
    moving_object_pair,
    smooth_random_flow,
    warp_to_prev,
)
from twostream.flow.tvl1 import (
    bicubic_sample,
    image_gradient,
    median_filter,
    median_filter_torch,
    pairs_that_fit,
)

# small and quick: three levels, few warps; eager torch (the compiled kernels are checked once below)
FAST = dict(tau=0.25, lambda_=0.15, theta=0.3, scales=3, scale_step=0.5, warps=3, iterations=50,
            epsilon=0.02, median_filter=5, device="cpu", compile=False, cpu_chunk=2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def real_frames(shared_data):
    """Two consecutive real frames (grey, 120x160: the UCF-101-style test clip at half size) that move ~1 px."""
    clip = shared_data / "clips" / "mmaction2_test.avi"
    if not clip.is_file():
        pytest.skip(f"real clip {clip} is not present in the shared data folder")
    frames = read_frames(clip)[74:76]
    return np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (160, 120), interpolation=cv2.INTER_AREA)
                     for f in frames])


def interior(flow: np.ndarray, margin: int = 8) -> np.ndarray:
    return flow[..., margin:-margin, margin:-margin]


def test_recovers_a_subpixel_translation_of_a_real_frame(real_frames):
    truth = np.broadcast_to(np.array([2.5, -1.25], np.float32).reshape(2, 1, 1), (2, 120, 160)).copy()
    prev, valid = warp_to_prev(real_frames[0], truth)
    flow = get_estimator("tvl1", **FAST)(prev[None], real_frames[0][None])[0]
    error = endpoint_error(interior(flow), interior(truth), interior(valid))
    assert error < 0.1, error
    assert np.median(flow[0][valid]) == pytest.approx(2.5, abs=0.05)
    assert np.median(flow[1][valid]) == pytest.approx(-1.25, abs=0.05)


def test_recovers_a_smooth_field_on_a_real_frame(real_frames):
    truth = smooth_random_flow(np.random.default_rng(3), 120, 160, max_px=4.0)
    prev, valid = warp_to_prev(real_frames[0], truth)
    flow = get_estimator("tvl1", **FAST)(prev[None], real_frames[0][None])[0]
    error = endpoint_error(flow, truth, valid)
    assert error < 0.3, error  # OpenCV's TV-L1 with its defaults: 0.27 px on this pair
    assert error < 0.2 * endpoint_error(np.zeros_like(truth), truth, valid)  # 5x better than "no motion"


def test_agrees_with_opencv_tvl1_on_real_consecutive_frames(real_frames):
    prev, nxt = real_frames[:1], real_frames[1:]
    ours = get_estimator("tvl1", **FAST)(prev, nxt)
    theirs = get_estimator("opencv_tvl1", tau=0.25, lambda_=0.15, theta=0.3, scales=3, warps=3, epsilon=0.01,
                           inner_iterations=30, outer_iterations=10, scale_step=0.5, gamma=0.0,
                           median_filtering=5)(prev, nxt)
    motion = np.sqrt((theirs ** 2).sum(1)).mean()
    assert motion > 0.5  # the clip really moves here, so agreement is not agreement on zero
    # measured: 0.09 px apart for ~1 px of motion (DIS is 0.26 px from OpenCV's TV-L1, Farneback 0.41)
    assert endpoint_error(interior(ours), interior(theirs)) < 0.15 * motion


SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"


def shipped(name: str) -> dict:
    """The ``params`` of conf/flow/NAME.yaml, with its defaults list resolved (tvl1_fast extends tvl1)."""
    conf = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "flow" / f"{name}.yaml")
    base = [shipped(parent) for parent in conf.get("defaults", []) if parent != "_self_"]
    return {**(base[0] if base else {}), **OmegaConf.to_container(conf.params)}


@pytest.fixture(scope="module")
def clip_frames() -> np.ndarray:
    """The frames (340x256 RGB) of the shared real clip the flow defaults were tuned on."""
    clip = SHARED_CLIPS / "mmaction2_test.mp4"
    if not clip.is_file():
        pytest.skip(f"real clip {clip} is not present in the shared data folder")
    return read_frames(clip)


@pytest.fixture(scope="module")
def zoom_rotation_640x360(clip_frames) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """A real frame enlarged to 640x360 under a known zoom + roll + pan of up to 9 px: (prev, nxt, truth,
    valid, EPE of OpenCV's TV-L1 with its shipped defaults). A large smooth field: with epsilon 0.02
    (the old default) a patch stayed pixels off."""
    nxt = cv2.resize(clip_frames[60], (640, 360), interpolation=cv2.INTER_CUBIC)
    truth = affine_flow(360, 640, zoom=0.015, angle_deg=0.8, shift=(2.0, -1.5))
    prev, valid = warp_to_prev(nxt, truth)
    reference = get_estimator("opencv_tvl1", **shipped("opencv_tvl1"))(prev[None], nxt[None])[0]
    return prev, nxt, truth, valid, endpoint_error(reference, truth, valid)


@pytest.mark.parametrize(("name", "tolerance"), [("tvl1", 1.1), ("tvl1_fast", 1.5)])
def test_shipped_defaults_match_opencv_under_zoom_and_rotation_at_640x360(zoom_rotation_640x360, name, tolerance):
    prev, nxt, truth, valid, reference = zoom_rotation_640x360
    assert reference < 0.1, reference  # OpenCV's TV-L1 gets it right, so the comparison is fair
    flow = get_estimator("tvl1", **shipped(name), device="cpu", compile=False)(prev[None], nxt[None])[0]
    error = endpoint_error(flow, truth, valid)
    assert error <= tolerance * reference, (error, reference)


def test_shipped_defaults_recover_a_15_px_motion_at_340x256(clip_frames):
    """A pan of 15 px (plus a smooth field): beyond the linearisation's reach with 5 pyramid levels of 0.8
    (the old default; OpenCV's TV-L1 with these is 6.6 px off on such pairs), within it with 8."""
    nxt = clip_frames[150]
    truth = affine_flow(256, 340, shift=(12.0, -9.0)) + smooth_random_flow(np.random.default_rng(5), 256, 340, 2.0)
    prev, valid = warp_to_prev(nxt, truth)
    flow = get_estimator("tvl1", **shipped("tvl1"), device="cpu", compile=False)(prev[None], nxt[None])[0]
    error = endpoint_error(flow, truth, valid)
    assert error < 0.2, error


def test_deterministic_and_independent_of_the_batch_on_cpu(textured_image):
    prev = np.stack([textured_image, np.roll(textured_image, 1, axis=0), textured_image])
    nxt = np.stack([np.roll(textured_image, 2, axis=1), textured_image, np.roll(textured_image, -1, axis=0)])
    est = get_estimator("tvl1", **FAST)
    first, second = est(prev, nxt), est(prev, nxt)
    assert np.array_equal(first, second)
    alone = est(prev[1:2], nxt[1:2])  # solved on its own, then inside a batch of three
    assert np.array_equal(alone[0], first[1])


@pytest.mark.slow  # torch.compile of every kernel: 18-232 s on 2 loaded cores
def test_compiled_kernels_match_eager_torch(textured_image):
    small = cv2.resize(textured_image, (64, 48), interpolation=cv2.INTER_AREA)
    prev, nxt = small[None], np.roll(small, 1, axis=1)[None]
    params = dict(FAST, scales=1, warps=2, iterations=30)
    eager = get_estimator("tvl1", **params)(prev, nxt)
    compiled = get_estimator("tvl1", **dict(params, compile=True))(prev, nxt)
    assert np.abs(compiled - eager).max() < 1e-3


def _compiles_so_far() -> int:
    from torch._dynamo.utils import compilation_time_metrics

    return len(compilation_time_metrics.get("_compile.compile_inner", []))


@pytest.mark.slow  # one compile of the kernels: ~1 min on the loaded 2-core machine
def test_one_compile_serves_real_clips_of_several_frame_sizes(shared_data):
    """Dynamic shapes (the default): after the first size, new frame sizes (landscape, portrait, wide)
    and their pyramid levels compile nothing, and each size's flow is eager torch's."""
    clip = shared_data / "clips" / "mmaction2_demo.mp4"
    if not clip.is_file():
        pytest.skip(f"real clip {clip} is not present in the shared data folder")
    frames = read_frames(clip)[10:12]
    params = dict(FAST, scales=2, warps=2, iterations=30)
    compiled = get_estimator("tvl1", **dict(params, compile=True))
    eager = get_estimator("tvl1", **params)
    compiles_after_first = None
    for size in [(64, 48), (48, 64), (88, 40)]:
        pair = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        flow = compiled(pair[:1], pair[1:])
        assert flow.shape == (1, 2, size[1], size[0])
        assert np.abs(flow - eager(pair[:1], pair[1:])).max() < 1e-3, size
        if compiles_after_first is None:
            compiles_after_first = _compiles_so_far()
    assert _compiles_so_far() == compiles_after_first


def test_falls_back_to_eager_when_compilation_fails(textured_image, monkeypatch, caplog):
    def broken_compile(fn, **options):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")
        return run

    small = textured_image[:48, :64]
    prev, nxt = small[None], np.roll(small, 1, axis=1)[None]
    params = dict(FAST, scales=1, warps=1, iterations=10)
    eager = get_estimator("tvl1", **params)(prev, nxt)
    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level("WARNING", logger="twostream.flow.tvl1"):
        fallback = get_estimator("tvl1", **dict(params, compile=True))(prev, nxt)
    assert np.array_equal(fallback, eager)
    assert "torch.compile failed" in caplog.text and "InvalidCxxCompiler" in caplog.text


def test_bicubic_sample_matches_torch_grid_sample():
    rng = np.random.default_rng(0)
    planes = [torch.from_numpy(rng.random((2, 20, 30), np.float32)) for _ in range(2)]
    x = torch.from_numpy(rng.uniform(-3, 32, (2, 20, 30)).astype(np.float32))
    y = torch.from_numpy(rng.uniform(-3, 22, (2, 20, 30)).astype(np.float32))
    grid = torch.stack([x * 2 / 29 - 1, y * 2 / 19 - 1], -1)
    for plane, ours in zip(planes, bicubic_sample(planes, x, y), strict=True):
        reference = F.grid_sample(plane[:, None], grid, mode="bicubic", padding_mode="border", align_corners=True)
        assert torch.allclose(ours, reference[:, 0], atol=1e-5)


def test_image_gradient_is_exact_for_cubic_polynomials():
    ys, xs = torch.meshgrid(torch.arange(12.0), torch.arange(14.0), indexing="ij")
    img = 0.01 * xs ** 3 - 0.2 * xs * ys + 0.05 * ys ** 2
    gx, gy = image_gradient(img[None])
    inner = (slice(2, -2), slice(2, -2))
    assert torch.allclose(gx[0][inner], (0.03 * xs ** 2 - 0.2 * ys)[inner], atol=1e-4)
    assert torch.allclose(gy[0][inner], (-0.2 * xs + 0.1 * ys)[inner], atol=1e-4)


def test_median_filter_opencv_and_torch_paths_agree():
    u = torch.from_numpy(np.random.default_rng(1).normal(0, 2, (2, 2, 17, 23)).astype(np.float32))
    assert torch.equal(median_filter(u, 5), median_filter_torch(u, 5))
    assert torch.equal(median_filter(u, 3), median_filter_torch(u, 3))


@pytest.mark.parametrize("size", [3, 5, 7])
def test_median_by_rank_selection_equals_the_median_of_unfolded_windows(size):
    rng = np.random.default_rng(size)
    smooth = rng.normal(0, 2, (2, 2, 13, 19))
    ties = rng.integers(-2, 3, (2, 2, 13, 19))  # five values: most windows hold repeated medians
    for values in (smooth, ties):
        u = torch.from_numpy(values.astype(np.float32))
        r = size // 2
        windows = F.unfold(F.pad(u, (r, r, r, r), mode="replicate"), size).view(2, 2, size * size, 13, 19)
        assert torch.equal(median_filter_torch(u, size), windows.median(dim=2).values)


def test_reading_convergence_less_often_gives_the_same_flow(textured_image):
    # what cuda_check_every does on a GPU, here on the CPU: frozen pairs do not move, so only the
    # number of idle steps changes; the pairs converge after different numbers of steps
    prev = np.stack([textured_image, textured_image])
    nxt = np.stack([np.roll(textured_image, 1, axis=1), np.roll(textured_image, 3, axis=0)])
    every_step = get_estimator("tvl1", **FAST)
    assert every_step.check_every == 1  # the CPU reads convergence after each step (free there)
    sparse = get_estimator("tvl1", **dict(FAST, cuda_check_every=7))
    sparse.check_every = 7
    assert np.array_equal(sparse(prev, nxt), every_step(prev, nxt))


def test_steps_stop_at_the_first_read_after_every_pair_converged(textured_image, monkeypatch):
    est = get_estimator("tvl1", **dict(FAST, scales=1, warps=1, iterations=200, median_filter=0))
    steps = {}
    for every in (1, 7):
        est.check_every, calls = every, []
        step = est._step
        monkeypatch.setattr(est, "_step", lambda *args, step=step, calls=calls: calls.append(1) or step(*args))
        est(textured_image[None], np.roll(textured_image, 1, axis=1)[None])
        steps[every] = len(calls)
    assert steps[1] < 200  # converged before the limit
    assert steps[7] == -(-steps[1] // 7) * 7  # ... and stopped at the next multiple of 7


def test_auto_batch_size_on_the_cpu_is_the_chunk_it_solves_at_once():
    est = get_estimator("tvl1", **dict(FAST, cpu_chunk=3))
    assert batch_pairs(est, "auto", 256, 340) == 3 and batch_pairs(est, 16, 256, 340) == 16
    with pytest.raises(ValueError, match="flow.batch_size=auto needs.*tvl1"):
        batch_pairs(get_estimator("dis", preset="fast"), "auto", 256, 340)


def test_pairs_that_fit_the_memory_budget():
    assert pairs_that_fit(10 * 2**30, 2**30) == 10
    assert pairs_that_fit(10 * 2**30 - 1, 2**30) == 9
    assert pairs_that_fit(2**20, 2**30) == 1  # a batch cannot be smaller than one pair


def test_invalid_parameters_are_named():
    with pytest.raises(ValueError, match="scale_step, warps"):
        get_estimator("tvl1", **dict(FAST, scale_step=1.5, warps=0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_device_without_a_gpu_says_what_to_use():
    with pytest.raises(RuntimeError, match="device=cpu"):
        get_estimator("tvl1", **dict(FAST, device="cuda"))


def test_warp_to_prev_of_an_integer_shift_is_the_shifted_frame(textured_image):
    truth = np.zeros((2, 96, 128), np.float32)
    truth[0], truth[1] = 3, -2  # prev[y, x] = nxt[y - 2, x + 3]
    prev, valid = warp_to_prev(textured_image, truth)
    assert np.array_equal(prev[2:, :-3], textured_image[:-2, 3:])
    assert valid[2:, :-3].all() and not valid[:2].any() and not valid[:, -3:].any()


def test_moving_object_pair_labels_motion_and_occlusion(textured_image):
    background_flow = np.zeros((2, 96, 128), np.float32)
    texture = np.roll(textured_image, 40, axis=1)
    prev, nxt, flow, valid = moving_object_pair(textured_image, texture, background_flow, centre=(60, 48),
                                                radii=(15, 10), motion=(4.0, 0.0))
    assert np.array_equal(flow[:, 48, 60], [4.0, 0.0]) and np.array_equal(flow[:, 5, 5], [0.0, 0.0])
    assert np.array_equal(prev[48, 50:70], texture[48, 54:74])  # the object moved 4 px right
    assert np.array_equal(nxt[5, 5], textured_image[5, 5])
    assert not valid[48, 77] and valid[48, 60]  # background covered by the object in nxt: not scored
