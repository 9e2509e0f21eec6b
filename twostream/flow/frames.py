"""Frames as the flow estimators take them."""

import cv2
import numpy as np


def to_grey(frames: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) RGB or (B, H, W) grey uint8 -> (B, H, W) grey uint8."""
    if frames.ndim == 3:
        return frames
    if frames.ndim == 4 and frames.shape[-1] == 3:
        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    raise ValueError(f"expected frames of shape (B, H, W, 3) or (B, H, W), got {frames.shape}")
