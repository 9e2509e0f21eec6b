"""Frame pairs with known motion, to measure flow estimators: a real frame warped by a known flow field.

Given a frame ``nxt`` and a field ``flow`` (2, H, W) on the grid of ``prev``, :func:`warp_to_prev`
makes ``prev[y, x] = nxt[y + v, x + u]``, which is exactly the estimator contract, so ``flow`` is the
true answer at every pixel whose displaced position lies inside the frame. The warp interpolates
with cubic B-splines at the exact positions (scipy), not with the Keys cubic that OpenCV's remap (at
1/32 px) and :mod:`twostream.flow.tvl1` use, so no estimator is scored on its own interpolator.
"""

import cv2
import numpy as np
from scipy import ndimage


def smooth_random_flow(rng: np.random.Generator, height: int, width: int, max_px: float,
                       affine_std: float = 0.01, noise_cells: tuple[int, ...] = (3, 6)) -> np.ndarray:
    """A smooth random flow (2, H, W) float32 whose largest component is ``max_px`` pixels.

    The field is a random affine motion (translation, zoom, rotation, shear: ``affine_std`` per pixel
    from the centre) plus smooth noise: Gaussian values on coarse grids of ``noise_cells`` x
    ``noise_cells`` cells upsampled bicubically, i.e. motion that varies over a fraction of the frame.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    centred = np.stack([xs - (width - 1) / 2, ys - (height - 1) / 2])
    matrix = rng.normal(0, affine_std, (2, 2)).astype(np.float32)
    flow = np.einsum("ij,jhw->ihw", matrix, centred) + rng.uniform(-1, 1, (2, 1, 1)).astype(np.float32)
    for cells in noise_cells:
        coarse = rng.normal(0, 1, (2, cells, cells)).astype(np.float32)
        flow += np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse])
    return (flow * (max_px / np.abs(flow).max())).astype(np.float32)


def affine_flow(height: int, width: int, zoom: float = 0.0, angle_deg: float = 0.0,
                shift: tuple[float, float] = (0.0, 0.0), shear: float = 0.0) -> np.ndarray:
    """The flow (2, H, W) float32 of a global affine motion about the frame's centre.

    A pixel at offset ``d`` from the centre moves to ``(1 + zoom) R(angle) S d + shift``, where ``R``
    rotates by ``angle_deg`` degrees and ``S = [[1, shear], [0, 1]]``: a camera zooming, rolling,
    panning. The largest displacement grows with the frame size (it is at the corners).
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    centred = np.stack([xs - (width - 1) / 2, ys - (height - 1) / 2])
    angle = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = (1 + zoom) * rotation @ np.array([[1.0, shear], [0.0, 1.0]]) - np.eye(2)
    flow = np.einsum("ij,jhw->ihw", matrix, centred) + np.asarray(shift, np.float64).reshape(2, 1, 1)
    return flow.astype(np.float32)


def warp_to_prev(nxt: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``prev`` with ``prev[y, x] = nxt[y + v, x + u]``, and where that position is inside ``nxt``.

    ``nxt`` is (H, W) or (H, W, 3) uint8; returns (prev, uint8 like ``nxt``; valid, (H, W) bool).
    """
    height, width = nxt.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    map_x, map_y = xs + flow[0], ys + flow[1]
    channels = nxt.reshape(height, width, -1).astype(np.float64)
    prev = np.stack([ndimage.map_coordinates(channels[..., c], [map_y, map_x], order=3, mode="mirror")
                     for c in range(channels.shape[-1])], -1)
    prev = np.clip(np.rint(prev), 0, 255).astype(np.uint8).reshape(nxt.shape)
    valid = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return prev, valid


def endpoint_error(flow: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean end-point error |flow - truth| in pixels over ``valid`` pixels; (..., 2, H, W) arrays."""
    error = np.sqrt(((flow - truth) ** 2).sum(-3))
    return float(error.mean() if valid is None else error[valid].mean())


def moving_object_pair(background: np.ndarray, texture: np.ndarray, background_flow: np.ndarray,
                       centre: tuple[float, float], radii: tuple[float, float], motion: tuple[float, float]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A pair with a motion boundary: an elliptical object moving over a background with its own flow.

    ``background`` (the next frame's background) moves by ``background_flow`` as in :func:`warp_to_prev`;
    the object, cut from ``texture`` (same shape as ``background``), is an ellipse with ``centre``
    (x, y) and ``radii`` (x, y) in ``prev`` that moves by ``motion`` (u, v) pixels. Returns (prev,
    nxt, true flow (2, H, W), valid), where valid leaves out the background that the object covers
    in ``nxt`` (occluded: its motion cannot be observed) and positions that leave the frame.
    """
    height, width = background.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)

    def inside_object(x: np.ndarray, y: np.ndarray, dx: float, dy: float) -> np.ndarray:
        return ((x - centre[0] - dx) / radii[0]) ** 2 + ((y - centre[1] - dy) / radii[1]) ** 2 <= 1

    object_flow = np.broadcast_to(np.asarray(motion, np.float32).reshape(2, 1, 1), background_flow.shape)
    in_prev = inside_object(xs, ys, 0.0, 0.0)
    in_nxt = inside_object(xs, ys, *motion)
    nxt = np.where(in_nxt[..., None] if background.ndim == 3 else in_nxt, texture, background)
    prev_background, background_valid = warp_to_prev(background, background_flow)
    prev_object, object_valid = warp_to_prev(texture, object_flow)
    mask = in_prev[..., None] if background.ndim == 3 else in_prev
    prev = np.where(mask, prev_object, prev_background)
    flow = np.where(in_prev, object_flow, background_flow).astype(np.float32)
    occluded = inside_object(xs + background_flow[0], ys + background_flow[1], *motion) & ~in_prev
    valid = np.where(in_prev, object_valid, background_valid & ~occluded)
    return prev, nxt, flow, valid
