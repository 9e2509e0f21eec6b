"""Colour-coded optical flow for eyes: direction as hue, magnitude as brightness (HSV mapping).

A displacement pointing right (+x) is red, down (+y, image rows grow downwards) is yellow-green,
left is cyan, up is violet; no motion is black. The brightest pixel is the largest displacement
(or ``max_magnitude`` when given, so that several images share one scale).
"""

from collections.abc import Sequence

import cv2
import numpy as np

from twostream.cache.store import FlowCache
from twostream.runlog import RunLog


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


def log_flow_samples(tracker: RunLog, cache: FlowCache, video_ids: Sequence[str], count: int) -> None:
    """Log ``count`` videos' middle frame beside its colour-coded flow (videos spread over the list)."""
    if not tracker.enabled or count <= 0:
        return
    cached = set(cache.video_ids())
    chosen = [v for v in video_ids if v in cached]
    if not chosen:
        return
    chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, min(count, len(chosen))).round().astype(int)]
    images, captions = [], []
    for video_id in chosen:
        # the stored frame (cache.frames may keep a few) nearest the middle that has a flow field
        stored = cache.frame_indices(video_id)
        stored = stored[stored < cache.num_flows(video_id)]
        middle = int(stored[np.abs(stored - cache.num_flows(video_id) // 2).argmin()])
        flow = cache.read_flow(video_id, middle, 1)[0]
        frame = cache.read_frames(video_id, middle)[0]
        images.append(np.concatenate([frame, flow_to_rgb(flow)], axis=1))
        captions.append(f"{video_id} frame {middle}: RGB | flow (max "
                        f"{float(np.hypot(flow[0], flow[1]).max()):.1f} px)")
    tracker.log_images("flow_samples", images, captions)  # one W&B image each, at its video's size
