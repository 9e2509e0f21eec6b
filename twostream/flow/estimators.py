"""Dense optical flow estimators behind one batch contract: OpenCV methods here, TV-L1 in torch (tvl1.py)."""

from collections.abc import Callable
from typing import Any, Protocol

import cv2
import numpy as np

from twostream.flow.frames import to_grey


class FlowEstimator(Protocol):
    """``est(prev, nxt) -> flow``: uint8 (B, H, W[, 3]) pairs -> float32 (B, 2, H, W) pixels."""

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray: ...


def _pairwise(flow_one: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> FlowEstimator:
    """Lift a single-pair OpenCV function (grey HxW -> HxWx2) to the batched contract."""

    def estimate(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if prev.shape != nxt.shape:
            raise ValueError(f"prev and nxt differ in shape: {prev.shape} vs {nxt.shape}")
        a, b = to_grey(prev), to_grey(nxt)
        out = np.empty((a.shape[0], 2, a.shape[1], a.shape[2]), np.float32)
        for i in range(a.shape[0]):
            out[i] = flow_one(a[i], b[i]).transpose(2, 0, 1)
        return out

    return estimate


def farneback(*, pyr_scale: float, levels: int, winsize: int, iterations: int, poly_n: int,
              poly_sigma: float) -> FlowEstimator:
    """Farneback's polynomial-expansion flow (``cv2.calcOpticalFlowFarneback``)."""

    def one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale, levels, winsize, iterations, poly_n,
                                            poly_sigma, 0)

    return _pairwise(one)


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def dis(*, preset: str, finest_scale: int | None = None) -> FlowEstimator:
    """Dense Inverse Search flow (``cv2.DISOpticalFlow``); ``finest_scale`` None keeps the preset's."""
    if preset not in _DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(_DIS_PRESETS)}")
    method = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    if finest_scale is not None:
        method.setFinestScale(finest_scale)
    return _pairwise(lambda a, b: method.calc(a, b, None))


def opencv_tvl1(*, tau: float, lambda_: float, theta: float, scales: int, warps: int, epsilon: float,
                inner_iterations: int, outer_iterations: int, scale_step: float, gamma: float,
                median_filtering: int) -> FlowEstimator:
    """OpenCV's TV-L1 (``cv2.optflow.DualTVL1OpticalFlow``), on the CPU, one pair at a time."""
    method = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=tau, lambda_=lambda_, theta=theta, nscales=scales, warps=warps, epsilon=epsilon,
        innnerIterations=inner_iterations, outerIterations=outer_iterations, scaleStep=scale_step,
        gamma=gamma, medianFiltering=median_filtering)
    return _pairwise(lambda a, b: method.calc(a, b, None))


def deepflow() -> FlowEstimator:
    """DeepFlow (Weinzaepfel et al. 2013, ``cv2.optflow.createOptFlow_DeepFlow``) with OpenCV's defaults.

    OpenCV's Python binding exposes no setters for DeepFlow's parameters, hence none here.
    """
    method = cv2.optflow.createOptFlow_DeepFlow()
    return _pairwise(lambda a, b: method.calc(a, b, None))


def brox(*, alpha: float, gamma: float, scale_factor: float, inner_iterations: int, outer_iterations: int,
         solver_iterations: int) -> FlowEstimator:
    """Brox et al. 2004 flow, the paper's method, on a GPU through OpenCV's CUDA module (``cv2.cuda``)."""
    built_with_cuda = hasattr(cv2, "cuda_BroxOpticalFlow")
    if not built_with_cuda or cv2.cuda.getCudaEnabledDeviceCount() == 0:
        raise RuntimeError(
            f"flow=brox needs OpenCV built with CUDA (cv2.cuda_BroxOpticalFlow) and a CUDA GPU; this OpenCV "
            f"{cv2.__version__} {'sees no CUDA GPU' if built_with_cuda else 'was built without CUDA'}. Install "
            "an OpenCV build with CUDA and the contrib modules (e.g. build opencv-contrib-python with "
            "CMAKE_ARGS='-DWITH_CUDA=ON'), or use flow=tvl1, which runs on CUDA through torch.")
    method = cv2.cuda_BroxOpticalFlow.create(alpha, gamma, scale_factor, inner_iterations, outer_iterations,
                                             solver_iterations)

    def one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # the CUDA Brox wants float32 images in [0, 1] on the GPU and returns a 2-channel flow there
        on_gpu = []
        for frame in (a, b):
            mat = cv2.cuda_GpuMat()
            mat.upload(frame.astype(np.float32) / np.float32(255))
            on_gpu.append(mat)
        return method.calc(on_gpu[0], on_gpu[1], None).download()

    return _pairwise(one)


def tvl1(**params: Any) -> FlowEstimator:
    """TV-L1 in torch, batched, on CUDA or the CPU (:class:`twostream.flow.tvl1.TVL1`)."""
    from twostream.flow.tvl1 import TVL1  # torch is only needed by the estimators that use it

    return TVL1(**params)


SIZES_OWN_BATCHES = frozenset({"tvl1"})  # estimators that take flow.batch_size=auto (auto_batch_size)


def batch_pairs(estimator: FlowEstimator, batch_size: int | str, height: int, width: int) -> int:
    """``flow.batch_size`` as a number of pairs of ``height`` x ``width`` frames: an integer as it is;
    ``auto`` as the estimator sizes it to its device (:meth:`twostream.flow.tvl1.TVL1.auto_batch_size`)."""
    if batch_size != "auto":
        return int(batch_size)
    auto_batch_size = getattr(estimator, "auto_batch_size", None)
    if auto_batch_size is None:
        raise ValueError(f"flow.batch_size=auto needs an estimator that sizes its own batches "
                         f"({', '.join(sorted(SIZES_OWN_BATCHES))}); give an integer")
    return int(auto_batch_size(height, width))


ESTIMATORS: dict[str, Callable[..., FlowEstimator]] = {
    "brox": brox, "deepflow": deepflow, "dis": dis, "farneback": farneback, "opencv_tvl1": opencv_tvl1,
    "tvl1": tvl1,
}


def get_estimator(name: str, **params: Any) -> FlowEstimator:
    """Build the estimator ``name`` with its own parameters (those of conf/flow/<name>.yaml)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown flow estimator {name!r}; available: {', '.join(sorted(ESTIMATORS))}")
    return ESTIMATORS[name](**params)
