"""Dense optical flow estimators (OpenCV methods for now), all with the same batch contract."""

from collections.abc import Callable
from typing import Any, Protocol

import cv2
import numpy as np


class FlowEstimator(Protocol):
    """``est(prev, nxt) -> flow``: uint8 (B, H, W[, 3]) pairs -> float32 (B, 2, H, W) pixels."""

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray: ...


def _to_grey(frames: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) RGB or (B, H, W) grey uint8 -> (B, H, W) grey uint8."""
    if frames.ndim == 3:
        return frames
    if frames.ndim == 4 and frames.shape[-1] == 3:
        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    raise ValueError(f"expected frames of shape (B, H, W, 3) or (B, H, W), got {frames.shape}")


def _pairwise(flow_one: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> FlowEstimator:
    """Lift a single-pair OpenCV function (grey HxW -> HxWx2) to the batched contract."""

    def estimate(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if prev.shape != nxt.shape:
            raise ValueError(f"prev and nxt differ in shape: {prev.shape} vs {nxt.shape}")
        a, b = _to_grey(prev), _to_grey(nxt)
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


ESTIMATORS: dict[str, Callable[..., FlowEstimator]] = {"farneback": farneback, "dis": dis}


def get_estimator(name: str, **params: Any) -> FlowEstimator:
    """Build the estimator ``name`` with its own parameters (those of conf/flow/<name>.yaml)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown flow estimator {name!r}; available: {', '.join(sorted(ESTIMATORS))}")
    return ESTIMATORS[name](**params)
