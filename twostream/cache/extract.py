"""The extraction stage: decode each video, estimate its flow, quantise, cache it; in parallel and resumable.

Two ways to keep the machine busy (``extract.num_workers``):

- ``0``: one process, three overlapping steps. A thread decodes the next videos
  (``extract.prefetch`` ahead) while the main thread runs the estimator on batches of frame pairs
  (``flow.batch_size``), and another thread quantises, compresses and writes the previous video.
  This is the mode for torch estimators, which batch pairs on one device.
- ``N > 0``: N processes, each with its own estimator, each taking whole videos. OpenCV methods
  compute one pair at a time on one core, so this is their mode (N = the number of cores).

Every video is written atomically (see :mod:`twostream.cache.store`), so a run killed at any
moment loses only the videos in flight, and re-running skips what is done. ``extract.shard=I/N`` takes
every N-th video of the sorted list starting at I, so N runs fill one cache at once.
"""

import logging
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from twostream.cache import open_cache
from twostream.cache.store import FAILED, CacheLayout, FlowCache, source_signature
from twostream.data.catalog import videos_to_extract
from twostream.data.splits import SplitLists, Video
from twostream.data.video import VideoDecodeError, read_frames
from twostream.errors import StageError
from twostream.flow import FlowEstimator, batch_pairs, estimator_kwargs, get_estimator
from twostream.flow.viz import flow_to_rgb
from twostream.runlog import RunLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractSettings:
    """What extraction does to each video: the estimator, its batching, resizing, which directions."""

    estimator: str
    params: Mapping[str, Any]  # every keyword argument of the estimator (flow params + runtime)
    batch_size: int | str  # pairs per estimator call, or "auto" (the estimator sizes it to its device)
    short_side: int | None
    backward: bool = False
    min_decoded_fraction: float | None = None  # of the frames a video's header promises

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "ExtractSettings":
        return cls(estimator=cfg.flow.name,
                   params=estimator_kwargs(OmegaConf.to_container(cfg.flow, resolve=True)),
                   batch_size=cfg.flow.batch_size, short_side=cfg.dataset.short_side,
                   backward=cfg.cache.backward, min_decoded_fraction=cfg.extract.min_decoded_fraction)


@dataclass
class ExtractSummary:
    """What one extraction run did; ``failed`` maps the videos that failed in this run to the reason."""

    extracted: int = 0
    skipped: int = 0
    pairs: int = 0
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N) with 0 <= I < N; None -> None (all videos)."""
    if shard is None:
        return None
    try:
        index, count = (int(x) for x in str(shard).split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise StageError(f"extract.shard={shard!r} is not of the form I/N with 0 <= I < N (e.g. extract.shard=0/4)")
    return index, count


def select_shard(videos: Sequence[Video], shard: str | None) -> list[Video]:
    """The videos of ``shard`` (``"I/N"``: every N-th of the id-sorted, de-duplicated list from I)."""
    unique = sorted({v.id: v for v in videos}.values(), key=lambda v: v.id)
    parsed = parse_shard(shard)
    return unique if parsed is None else unique[parsed[0]::parsed[1]]


def video_flow(frames: np.ndarray, estimator: FlowEstimator, batch_size: int | str,
               direction: str = "fwd") -> np.ndarray:
    """Flow between consecutive frames in batches of pairs: (T, H, W, 3) -> float32 (T-1, 2, H, W).

    ``"fwd"``: field t is the flow from frame t to t+1; ``"bwd"``: from frame t+1 to frame t.
    ``batch_size`` ``"auto"`` lets the estimator size the batches (:func:`twostream.flow.batch_pairs`).
    """
    first, second = (frames[:-1], frames[1:]) if direction == "fwd" else (frames[1:], frames[:-1])
    batch_size = batch_pairs(estimator, batch_size, *frames.shape[1:3])
    return np.concatenate([estimator(first[i:i + batch_size], second[i:i + batch_size])
                           for i in range(0, len(first), batch_size)])


@dataclass
class _Decoded:
    video: Video
    source: dict[str, int | None]
    frames: np.ndarray | None = None
    error: str | None = None
    pairs: int = 0  # flow fields computed (both directions)


def _decode(video: Video, settings: ExtractSettings) -> _Decoded:
    # The source is signed before decoding: a file changed meanwhile is redone next run.
    source = source_signature(video.path)
    try:
        return _Decoded(video, source, frames=read_frames(video.path, short_side=settings.short_side, min_frames=2,
                                                          min_fraction=settings.min_decoded_fraction))
    except VideoDecodeError as error:
        return _Decoded(video, source, error=str(error))


def _flows(frames: np.ndarray, estimator: FlowEstimator, settings: ExtractSettings) -> list[np.ndarray]:
    directions = ("fwd", "bwd") if settings.backward else ("fwd",)
    return [video_flow(frames, estimator, settings.batch_size, d) for d in directions]


def _store(cache: FlowCache, item: _Decoded, flows: list[np.ndarray]) -> None:
    """Write one decoded video with its flows (or its failure)."""
    if item.frames is None:
        cache.mark_failed(item.video.id, item.error or "", source=item.source)
        return
    cache.write_video(item.video.id, item.frames, *flows, source=item.source)
    item.pairs = sum(len(f) for f in flows)


def _threaded(todo: Sequence[Video], cache: FlowCache, settings: ExtractSettings,
              prefetch: int) -> Iterator[_Decoded]:
    """One process: decode ahead in a thread, estimate here, write the previous video in another thread."""
    estimator = get_estimator(settings.estimator, **settings.params)
    with ThreadPoolExecutor(1, "decode") as decoder, ThreadPoolExecutor(1, "write") as writer:
        queue: deque[Future[_Decoded]] = deque()
        videos = iter(todo)
        for video in videos:
            queue.append(decoder.submit(_decode, video, settings))
            if len(queue) > prefetch:
                break
        writing: tuple[Future[None], _Decoded] | None = None
        while queue:
            item = queue.popleft().result()
            next_video = next(videos, None)
            if next_video is not None:
                queue.append(decoder.submit(_decode, next_video, settings))
            flows = _flows(item.frames, estimator, settings) if item.frames is not None else []
            if writing is not None:  # at most one video waits for its write: memory stays bounded
                writing[0].result()
                yield writing[1]
            writing = (writer.submit(_store, cache, item, flows), item)
        if writing is not None:
            writing[0].result()
            yield writing[1]


_worker: dict[str, Any] = {}


def _start_worker(path: Path, fingerprint: Mapping[str, Any], layout: CacheLayout,
                  settings: ExtractSettings) -> None:
    cv2.setNumThreads(1)  # one core per worker: the pool is the parallelism
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    _worker.update(cache=FlowCache(path, fingerprint, writable=True, layout=layout), settings=settings,
                   estimator=get_estimator(settings.estimator, **settings.params))


def _work(video: Video) -> _Decoded:
    settings: ExtractSettings = _worker["settings"]
    item = _decode(video, settings)
    flows = _flows(item.frames, _worker["estimator"], settings) if item.frames is not None else []
    _store(_worker["cache"], item, flows)
    item.frames = None  # nothing big goes back to the parent
    return item


def _pooled(todo: Sequence[Video], cache: FlowCache, settings: ExtractSettings,
            num_workers: int) -> Iterator[_Decoded]:
    """``num_workers`` processes (spawned: forking a process with Zarr's and torch's threads is unsafe)."""
    pool = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(cache.path, cache.fingerprint, cache.layout, settings))
    try:
        for future in as_completed([pool.submit(_work, video) for video in todo]):
            yield future.result()
    finally:  # on an error or Ctrl-C, do not start the videos still queued
        pool.shutdown(cancel_futures=True)


def extract_videos(videos: Sequence[Video], cache: FlowCache, settings: ExtractSettings, *,
                   num_workers: int = 0, prefetch: int = 1, progress: bool = True) -> ExtractSummary:
    """Extract every video not yet in ``cache``; failures are recorded in the cache, not raised.

    Videos already complete (or recorded as failed) from an unchanged source file are skipped,
    so an interrupted extraction continues where it stopped.
    """
    summary = ExtractSummary()
    todo = [v for v in videos if cache.status(v.id, source_signature(v.path)) is None]
    summary.skipped = len(videos) - len(todo)
    start = time.perf_counter()
    bar = tqdm(total=len(videos), initial=summary.skipped, desc="extract", unit="video",
               disable=None if progress else True, dynamic_ncols=True)  # None: off in a log file
    run = _pooled(todo, cache, settings, num_workers) if num_workers > 0 else _threaded(todo, cache, settings,
                                                                                          prefetch)
    with bar:
        for item in run:
            if item.error is not None:
                log.warning("failed: %s", item.error)
                summary.failed[item.video.id] = item.error
            else:
                summary.extracted += 1
                summary.pairs += item.pairs
            summary.seconds = time.perf_counter() - start
            bar.update()
            bar.set_postfix(pairs_per_s=f"{summary.pairs_per_second:.0f}", failed=len(summary.failed))
    summary.seconds = time.perf_counter() - start
    return summary


def run_extract(cfg: DictConfig, lists: SplitLists, run_log: RunLog) -> dict[str, str]:
    """The extract stage: this shard's videos into the cache; failures listed, fatal only if strict.
    Logs its counts, failures and ``tracking.flow_samples`` flow pictures to ``run_log``.
    Returns every failed video of the shard (id -> reason), each already named in the log once."""
    videos = select_shard(videos_to_extract(lists), cfg.extract.shard)
    cache = open_cache(cfg, writable=True)
    summary = extract_videos(videos, cache, ExtractSettings.from_config(cfg), num_workers=cfg.extract.num_workers,
                             prefetch=cfg.extract.prefetch, progress=cfg.progress)
    failures = {v.id: (cache.attrs(v.id) or {}).get("reason", "") for v in videos
                if cache.status(v.id, source_signature(v.path)) == FAILED}
    log.info("extract%s: %d extracted, %d already cached, %d failed (%d of them in this run); "
             "%.1f flow pairs/s over %.0f s -> %s", "" if cfg.extract.shard is None else f" shard {cfg.extract.shard}",
             summary.extracted, summary.skipped, len(failures), len(summary.failed), summary.pairs_per_second,
             summary.seconds, cache.path)
    for video_id, reason in failures.items():
        if video_id not in summary.failed:  # (this run's failures were named as they happened)
            log.warning("failed in an earlier run: %s: %s", video_id, reason)
    run_log.set_summary({"videos_extracted": summary.extracted, "videos_skipped": summary.skipped,
                         "videos_failed": len(failures), "pairs_per_second": summary.pairs_per_second})
    if failures:
        run_log.log_table("failures", ["video", "reason"], [[k, v] for k, v in failures.items()])
        if cfg.extract.strict:
            raise StageError(f"{len(failures)} video(s) failed extraction (extract.strict=true); see the log")
    log_flow_samples(run_log, cache, [v.id for v in lists.train + lists.test], cfg.tracking.flow_samples)
    return failures


def log_flow_samples(run_log: RunLog, cache: FlowCache, video_ids: Sequence[str], count: int) -> None:
    """Log ``count`` videos' middle frame beside its colour-coded flow (videos spread over the list)."""
    if not run_log.enabled or count <= 0:
        return
    cached = set(cache.video_ids())
    chosen = [v for v in video_ids if v in cached]
    if not chosen:
        return
    chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, min(count, len(chosen))).round().astype(int)]
    images, captions = [], []
    for video_id in chosen:
        # the stored frame (cache.frames may keep a few) nearest the middle that has a flow field
        stored, flows = cache.frame_indices(video_id), cache.num_flows(video_id)
        stored = stored[stored < flows]
        middle = int(stored[np.abs(stored - flows // 2).argmin()])
        flow = cache.read_flow(video_id, middle, 1)[0]
        frame = cache.read_frames(video_id, middle)[0]
        images.append(np.concatenate([frame, flow_to_rgb(flow)], axis=1))
        captions.append(f"{video_id} frame {middle}: RGB | flow (max "
                        f"{float(np.hypot(flow[0], flow[1]).max()):.1f} px)")
    run_log.log_images("flow_samples", images, captions)  # one W&B image each, at its video's size
