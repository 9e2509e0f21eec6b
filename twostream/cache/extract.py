"""The extraction stage: decode each video, estimate its forward flow, quantise, cache it."""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from twostream.cache.store import FlowCache
from twostream.data.splits import Video
from twostream.data.video import VideoDecodeError, read_frames
from twostream.flow import FlowEstimator, quantize

log = logging.getLogger(__name__)


@dataclass
class ExtractSummary:
    """What one extraction run did."""

    extracted: int = 0
    skipped: int = 0
    pairs: int = 0
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0


def video_flow(frames: np.ndarray, estimator: FlowEstimator, batch_size: int) -> np.ndarray:
    """Forward flow between consecutive frames, (T, H, W, 3) -> float32 (T-1, 2, H, W), in batches."""
    pairs = len(frames) - 1
    parts = [estimator(frames[i:min(i + batch_size, pairs)], frames[i + 1:min(i + batch_size, pairs) + 1])
             for i in range(0, pairs, batch_size)]
    return np.concatenate(parts)


def extract_videos(videos: Sequence[Video], cache: FlowCache, estimator: FlowEstimator, *,
                   short_side: int | None, batch_size: int, flows_per_chunk: int,
                   progress: bool = True) -> ExtractSummary:
    """Extract every video not yet in ``cache``; failures are recorded, not raised.

    Re-running skips videos already complete (or recorded as failed), so an interrupted
    extraction continues where it stopped.
    """
    summary = ExtractSummary()
    start = time.perf_counter()
    bar = tqdm(videos, desc="extract", unit="video", disable=not progress, dynamic_ncols=True)
    for video in bar:
        if cache.is_done(video.id):
            summary.skipped += 1
            continue
        try:
            frames = read_frames(video.path, short_side=short_side, min_frames=2)
        except VideoDecodeError as error:
            log.warning("skipping %s", error)
            cache.mark_failed(video.id, str(error))
            summary.failed[video.id] = str(error)
            continue
        flow = video_flow(frames, estimator, batch_size)
        cache.write_video(video.id, frames, quantize(flow, cache.bound), flows_per_chunk)
        summary.extracted += 1
        summary.pairs += len(flow)
        summary.seconds = time.perf_counter() - start
        bar.set_postfix(pairs_per_s=f"{summary.pairs_per_second:.0f}")
    summary.seconds = time.perf_counter() - start
    return summary
