"""The extraction stage: decode each video, estimate its forward flow, quantise, cache it."""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from twostream.cache import open_cache
from twostream.cache.store import FlowCache, source_signature
from twostream.data.splits import SplitLists, Video
from twostream.data.video import VideoDecodeError, read_frames
from twostream.errors import StageError
from twostream.flow import FlowEstimator, get_estimator, quantize
from twostream.tracking import Tracker

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

    Re-running skips videos already complete (or recorded as failed) from an unchanged source
    file, so an interrupted extraction continues where it stopped.
    """
    summary = ExtractSummary()
    start = time.perf_counter()
    bar = tqdm(videos, desc="extract", unit="video", disable=not progress, dynamic_ncols=True)
    for video in bar:
        source = source_signature(video.path)
        if cache.status(video.id, source) is not None:
            summary.skipped += 1
            continue
        try:
            frames = read_frames(video.path, short_side=short_side, min_frames=2)
        except VideoDecodeError as error:
            log.warning("skipping %s", error)
            cache.mark_failed(video.id, str(error), source=source)
            summary.failed[video.id] = str(error)
            continue
        flow = video_flow(frames, estimator, batch_size)
        cache.write_video(video.id, frames, quantize(flow, cache.bound), source=source,
                          flows_per_chunk=flows_per_chunk)
        summary.extracted += 1
        summary.pairs += len(flow)
        summary.seconds = time.perf_counter() - start
        bar.set_postfix(pairs_per_s=f"{summary.pairs_per_second:.0f}")
    summary.seconds = time.perf_counter() - start
    return summary


def run_extract(cfg: DictConfig, lists: SplitLists, tracker: Tracker) -> None:
    """The extract stage: every video of the split into the cache; failures listed, fatal only if strict."""
    cache = open_cache(cfg, writable=True)
    estimator = get_estimator(cfg.flow.name, **cfg.flow.params)
    summary = extract_videos(lists.train + lists.test, cache, estimator, short_side=cfg.dataset.short_side,
                             batch_size=cfg.flow.batch_size, flows_per_chunk=cfg.cache.flows_per_chunk,
                             progress=cfg.progress)
    failures = cache.failures()
    log.info("extract: %d extracted, %d already cached, %d failed; %.0f flow pairs/s -> %s",
             summary.extracted, summary.skipped, len(failures), summary.pairs_per_second, cache.path)
    for video_id, reason in failures.items():
        log.warning("failed: %s: %s", video_id, reason)
    tracker.set_summary({"videos_extracted": summary.extracted, "videos_skipped": summary.skipped,
                         "videos_failed": len(failures), "pairs_per_second": summary.pairs_per_second})
    if failures:
        tracker.log_table("failures", ["video", "reason"], [[k, v] for k, v in failures.items()])
        if cfg.strict:
            raise StageError(f"{len(failures)} video(s) failed extraction (strict=true); see the log")
