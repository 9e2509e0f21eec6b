"""Clip flow to +-bound pixels and map it linearly onto uint8 (and back).

The mapping is ``q = round((clip(f, -bound, bound) + bound) * 255 / (2 * bound))``, so one
uint8 step is ``2 * bound / 255`` pixels and the round trip of an unclipped value is exact to
half a step.
"""

import numpy as np

LEVELS = 255


def quantize(flow: np.ndarray, bound: float) -> np.ndarray:
    """Quantise float flow (any shape) to uint8 after clipping to +-``bound`` pixels."""
    if bound <= 0:
        raise ValueError(f"flow quantisation bound must be > 0, got {bound}")
    scaled = (np.clip(flow, -bound, bound) + bound) * (LEVELS / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize(q: np.ndarray, bound: float) -> np.ndarray:
    """Exact inverse of :func:`quantize`'s linear map: uint8 -> float32 pixels in [-bound, bound]."""
    return (q.astype(np.float32) * np.float32(2.0 * bound / LEVELS) - np.float32(bound)).astype(np.float32)
