"""The benchmark's cases: frame pairs with known flow that vary what real video varies.

Each case is one kind of motion at one frame size, made from real frames (resized to the case's size:
cubic when enlarging, area when shrinking) or from a synthetic scene, warped by a known field
(:mod:`twostream.flow.groundtruth`). Cases are split in two groups:

* ``tune``: frames of ``mmaction2_test.mp4``, the clip the defaults were tuned on;
* ``held-out``: frames of ``mmaction2_demo.mp4`` and ``mmaction2_test.avi`` and synthetic scenes,
  never looked at while choosing ``tvl1``'s defaults: they say whether the choice generalises.
"""

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from twostream.data.video import read_frames
from twostream.flow.groundtruth import affine_flow, moving_object_pair, smooth_random_flow, warp_to_prev

TUNE, HELD_OUT = "tune", "held-out"
TUNING_CLIP = "mmaction2_test.mp4"
HELD_OUT_CLIPS = ("mmaction2_demo.mp4", "mmaction2_test.avi")


@dataclass
class PairSet:
    """Pairs (B, H, W, 3) uint8 with their true flow (B, 2, H, W) and the pixels where it is scored."""

    prev: np.ndarray
    nxt: np.ndarray
    flow: np.ndarray
    valid: np.ndarray


@dataclass
class Case:
    name: str
    group: str
    size: tuple[int, int]  # (width, height)
    source: str            # a clip's file name, or "synthetic"
    make: Callable[[np.random.Generator, np.ndarray, np.ndarray], tuple[np.ndarray, ...]]
    pairs: int = 2         # the 1280x720 case takes one pair: OpenCV's TV-L1 needs ~10 s for it


def resized(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` at ``size`` (width, height): cubic when enlarging, area-averaged when shrinking."""
    enlarging = size[0] * size[1] > frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA)


def synthetic_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An RGB image of smooth multi-scale noise with sharp-edged blobs: texture at every scale."""
    layers = [cv2.resize(rng.random((max(2, height // s), max(2, width // s)), np.float32), (width, height),
                         interpolation=cv2.INTER_CUBIC) for s in (2, 4, 8, 16)]
    grey = sum(layers) / len(layers)
    for _ in range(6):  # blobs: edges sharper than the noise
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(2, max(3, width // 5))), int(rng.integers(2, max(3, height // 5))))
        cv2.ellipse(grey, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0, 1)), -1)
    rgb = np.stack([grey, np.roll(grey, 3, axis=1), np.roll(grey, 5, axis=0)], axis=-1)
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min())
    return (rgb * 255).astype(np.uint8)


def _warped(frame: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, ...]:
    prev, valid = warp_to_prev(frame, flow)
    return prev, frame, flow, valid


def _scale(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high) * rng.choice([-1, 1]))


def translation(rng, frame, other):
    h, w = frame.shape[:2]
    return _warped(frame, affine_flow(h, w, shift=(_scale(rng, 1, 5), _scale(rng, 1, 5))))


def zoom(rng, frame, other):
    h, w = frame.shape[:2]
    return _warped(frame, affine_flow(h, w, zoom=_scale(rng, 0.01, 0.03)))


def rotation(rng, frame, other):
    h, w = frame.shape[:2]
    return _warped(frame, affine_flow(h, w, angle_deg=_scale(rng, 0.5, 1.5)))


def zoom_rotation_translation(rng, frame, other):
    """The issue's failing kind: zoom, roll and pan together, up to ~9 px at 640x360."""
    h, w = frame.shape[:2]
    return _warped(frame, affine_flow(h, w, zoom=_scale(rng, 0.01, 0.02), angle_deg=_scale(rng, 0.5, 1.0),
                                      shift=(_scale(rng, 1, 3), _scale(rng, 1, 3))))


def full_affine(rng, frame, other):
    h, w = frame.shape[:2]
    return _warped(frame, affine_flow(h, w, zoom=_scale(rng, 0.005, 0.02), angle_deg=_scale(rng, 0.3, 1.0),
                                      shift=(_scale(rng, 0.5, 3), _scale(rng, 0.5, 3)),
                                      shear=_scale(rng, 0.005, 0.015)))


def smooth(rng, frame, other, max_px=6.0):
    h, w = frame.shape[:2]
    return _warped(frame, smooth_random_flow(rng, h, w, rng.uniform(0.3, 1.0) * max_px))


def large_motion(rng, frame, other):
    """10-20 px: a smooth field plus a global pan."""
    h, w = frame.shape[:2]
    flow = smooth_random_flow(rng, h, w, 4.0) + affine_flow(h, w, shift=(_scale(rng, 8, 14), _scale(rng, 4, 8)))
    return _warped(frame, flow * (rng.uniform(10, 20) / np.abs(flow).max()))


def near_static(rng, frame, other):
    h, w = frame.shape[:2]
    return _warped(frame, smooth_random_flow(rng, h, w, rng.uniform(0.1, 0.3)))


def moving_object(rng, frame, other, max_px=6.0):
    """A smooth background and an elliptical object from another frame moving its own way: a motion boundary."""
    h, w = frame.shape[:2]
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0) * max_px
    return moving_object_pair(frame, other, smooth_random_flow(rng, h, w, rng.uniform(0.3, 1.0) * max_px),
                              centre=(rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h),
                              radii=(rng.uniform(0.1, 0.2) * w, rng.uniform(0.1, 0.25) * h),
                              motion=(speed * np.cos(angle), speed * np.sin(angle)))


def with_noise(make, std: float = 3.0):
    """``make``'s pairs with independent Gaussian noise of ``std`` grey levels on both frames."""

    def noisy(rng, frame, other):
        prev, nxt, flow, valid = make(rng, frame, other)
        prev, nxt = (np.clip(np.rint(f + rng.normal(0, std, f.shape)), 0, 255).astype(np.uint8) for f in (prev, nxt))
        return prev, nxt, flow, valid

    return noisy


def with_brightness_change(make):
    """``make``'s pairs with the second frame brighter and more contrasted (gain 1.1, +8 grey levels)."""

    def brighter(rng, frame, other):
        prev, nxt, flow, valid = make(rng, frame, other)
        return prev, np.clip(np.rint(nxt * 1.1 + 8), 0, 255).astype(np.uint8), flow, valid

    return brighter


CLIP_TEST, CLIP_DEMO, CLIP_AVI = TUNING_CLIP, *HELD_OUT_CLIPS
CASES = [
    Case("translation 340x256", TUNE, (340, 256), CLIP_TEST, translation),
    Case("zoom 340x256", TUNE, (340, 256), CLIP_TEST, zoom),
    Case("rotation 340x256", TUNE, (340, 256), CLIP_TEST, rotation),
    Case("smooth random 340x256", TUNE, (340, 256), CLIP_TEST, smooth),
    Case("moving object 340x256", TUNE, (340, 256), CLIP_TEST, moving_object),
    Case("large motion 10-20 px 340x256", TUNE, (340, 256), CLIP_TEST, large_motion),
    Case("noise (std 3) 340x256", TUNE, (340, 256), CLIP_TEST, with_noise(smooth)),
    Case("zoom+rotation+translation 640x360", TUNE, (640, 360), CLIP_TEST, zoom_rotation_translation),
    Case("synthetic crop 64x64", HELD_OUT, (64, 64), "synthetic", moving_object),
    Case("synthetic scene 160x120", HELD_OUT, (160, 120), "synthetic", full_affine),
    Case("near-static 340x256", HELD_OUT, (340, 256), CLIP_DEMO, near_static),
    Case("brightness change 340x256", HELD_OUT, (340, 256), CLIP_DEMO, with_brightness_change(smooth)),
    Case("large motion 10-20 px 340x256 (other clip)", HELD_OUT, (340, 256), CLIP_AVI, large_motion),
    Case("moving object 426x240", HELD_OUT, (426, 240), CLIP_AVI, moving_object),
    Case("full affine 455x256", HELD_OUT, (455, 256), CLIP_DEMO, full_affine),
    # added after the first full run, to judge tvl1_fast's second choice on cases nobody had seen
    Case("full affine 455x256 (other clip)", HELD_OUT, (455, 256), CLIP_AVI, full_affine),
    Case("rotation 426x240", HELD_OUT, (426, 240), CLIP_DEMO, rotation),
    Case("zoom+rotation+translation 640x360 (other clip)", HELD_OUT, (640, 360), CLIP_DEMO,
         zoom_rotation_translation),
    Case("small motion 640x360", HELD_OUT, (640, 360), CLIP_DEMO, lambda rng, f, o: smooth(rng, f, o, 1.6)),
    Case("full affine 1280x720", HELD_OUT, (1280, 720), CLIP_DEMO, full_affine, pairs=1),
]


@lru_cache(maxsize=len(HELD_OUT_CLIPS) + 1)
def _clip(path: Path) -> np.ndarray:
    return read_frames(path)


def make_pairs(case: Case, clips: Path, seed: int) -> PairSet:
    """``case.pairs`` pairs of ``case``, from frames spread over its clip (or synthetic scenes), reproducibly."""
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])  # a case's pairs do not depend on the others
    width, height = case.size
    if case.source == "synthetic":
        frames = [synthetic_scene(rng, height, width) for _ in range(case.pairs + 1)]
    else:
        video = _clip(clips / case.source)
        picks = np.linspace(0, len(video) - 1, case.pairs + 2).astype(int)[1:]  # not the first frame
        frames = [resized(video[i], case.size) for i in picks]
    made = [case.make(rng, frames[i], frames[(i + 1) % len(frames)]) for i in range(case.pairs)]
    return PairSet(*map(np.stack, zip(*made, strict=True)))
