"""Decode a video file into RGB frames, with errors that name the file and the reason."""

from pathlib import Path

import cv2
import numpy as np


class VideoDecodeError(RuntimeError):
    """A video that is missing, empty, unreadable or too short; the message names the file."""


def resize_short_side(frame: np.ndarray, short_side: int | None) -> np.ndarray:
    """Resize so the shorter side is ``short_side`` pixels (aspect kept); None keeps the frame."""
    if short_side is None:
        return frame
    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    if scale == 1:
        return frame
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _open(path: Path) -> cv2.VideoCapture:
    """An open capture of ``path``, or VideoDecodeError saying why there is none."""
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: file is empty (0 bytes)")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoDecodeError(f"{path}: OpenCV cannot open it as a video")
    return capture


def probe_video(path: str | Path, min_frames: int = 1) -> None:
    """Check cheaply, before decoding a whole video, that it opens, its first frame decodes and its
    header does not promise fewer than ``min_frames`` frames; raise :class:`VideoDecodeError` otherwise.

    A header that gives no count passes; :func:`read_frames` counts what it decodes.
    """
    path = Path(path)
    capture = _open(path)
    try:
        promised = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not capture.read()[0]:
            raise VideoDecodeError(f"{path}: OpenCV opens it but decodes no frame")
    finally:
        capture.release()
    if 0 < promised < min_frames:
        raise VideoDecodeError(f"{path}: {promised} frame(s), need at least {min_frames}")


def read_frames(path: str | Path, short_side: int | None = None, min_frames: int = 1,
                min_fraction: float | None = None) -> np.ndarray:
    """All frames of ``path`` as uint8 RGB (T, H, W, 3), optionally resized on the short side.

    Raises :class:`VideoDecodeError` if the file is missing, zero-byte, cannot be opened,
    decodes to fewer than ``min_frames`` frames, or (with ``min_fraction``) to fewer than that
    fraction of the frame count its header promises: OpenCV stops quietly where a truncated or
    damaged file ends, so the count is the only sign of it.
    """
    path = Path(path)
    capture = _open(path)
    promised = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # <= 0 when the container does not say
    frames = []
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(resize_short_side(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), short_side))
    finally:
        capture.release()
    if len(frames) < min_frames:
        raise VideoDecodeError(f"{path}: decoded {len(frames)} frame(s), need at least {min_frames}")
    if min_fraction is not None and len(frames) < min_fraction * promised:
        raise VideoDecodeError(f"{path}: truncated or damaged: its header promises {promised} frames, "
                               f"OpenCV decoded {len(frames)}")
    return np.stack(frames)
