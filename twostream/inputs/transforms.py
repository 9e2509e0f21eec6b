"""Crops and flips for (C, H, W) inputs; flipping a flow input negates its x channels."""

from collections.abc import Sequence

import cv2
import numpy as np
import torch

# ImageNet statistics: the usual normalisation for RGB nets, and what pretrained weights expect.
RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
RGB_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def normalize_rgb(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) normalised with ImageNet statistics."""
    return (frame.transpose(2, 0, 1).astype(np.float32) / 255.0 - RGB_MEAN) / RGB_STD


def hflip(x: np.ndarray, is_flow: bool) -> np.ndarray:
    """Mirror a (C, H, W) input left-right; for flow (x, y, x, y, ...) the x channels change sign."""
    flipped = x[:, :, ::-1].copy()
    if is_flow:
        flipped[0::2] *= -1
    return flipped


def resize_crop(crop: np.ndarray, size: int, is_flow: bool) -> np.ndarray:
    """Resize a square (C, S, S) crop to (C, size, size); flow displacements scale with the image."""
    side = crop.shape[1]
    if side == size:
        return crop
    resized = cv2.resize(np.ascontiguousarray(crop.transpose(1, 2, 0)), (size, size),
                         interpolation=cv2.INTER_LINEAR).reshape(size, size, -1).transpose(2, 0, 1)
    return resized * np.float32(size / side) if is_flow else resized


def random_crop_flip(x: np.ndarray, size: int, is_flow: bool, scales: Sequence[float] | None = None,
                     generator: torch.Generator | None = None) -> np.ndarray:
    """A random ``size`` x ``size`` crop, mirrored with probability 1/2 (training augmentation).

    With ``scales`` (multi-scale cropping), the crop's side is a random one of ``scale x`` the
    input's shorter side, and the crop is resized to ``size``.
    """
    _, h, w = x.shape
    side = size
    if scales:
        scale = scales[int(torch.randint(0, len(scales), (1,), generator=generator))]
        side = max(1, min(h, w, round(scale * min(h, w))))
    if h < side or w < side:
        raise ValueError(f"crop {side} is larger than the input {h}x{w}; lower train.crop_size")
    top = int(torch.randint(0, h - side + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - side + 1, (1,), generator=generator))
    crop = resize_crop(x[:, top:top + side, left:left + side], size, is_flow)
    return hflip(crop, is_flow) if bool(torch.rand(1, generator=generator) < 0.5) else crop.copy()


def corner_center_boxes(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop, in that order."""
    return [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]


def protocol_crops(x: np.ndarray, size: int, num_crops: int, is_flow: bool) -> np.ndarray:
    """The test protocol's crops of one (C, H, W) input: 1 (centre) or 10 (4 corners + centre, and mirrors)."""
    _, h, w = x.shape
    boxes = corner_center_boxes(h, w, size)
    if num_crops == 1:
        boxes = boxes[4:]
    elif num_crops != 10:
        raise ValueError(f"test.crops must be 1 or 10, got {num_crops}")
    crops = [x[:, top:top + size, left:left + size] for top, left in boxes]
    if num_crops == 10:
        crops += [hflip(c, is_flow) for c in crops]
    return np.stack(crops)
