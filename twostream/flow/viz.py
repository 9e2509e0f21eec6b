"""Colour-coded optical flow for eyes: direction as hue, magnitude as brightness (HSV mapping).

A displacement pointing right (+x) is red, down (+y, image rows grow downwards) is yellow-green,
left is cyan, up is violet; no motion is black. The brightest pixel is the largest displacement
(or ``max_magnitude`` when given, so that several images share one scale).
"""

import cv2
import numpy as np


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(2, H, W) float flow (x, y in pixels) -> (H, W, 3) uint8 RGB image."""
    magnitude, angle = cv2.cartToPolar(flow[0].astype(np.float32), flow[1].astype(np.float32),
                                       angleInDegrees=True)
    scale = float(magnitude.max()) if max_magnitude is None else max_magnitude
    hsv = np.empty(magnitude.shape + (3,), np.uint8)
    hsv[..., 0] = np.rint(angle / 2).astype(np.int32) % 180  # OpenCV's 8-bit hue is degrees / 2
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude * (255.0 / scale), 0, 255).round() if scale > 0 else 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
