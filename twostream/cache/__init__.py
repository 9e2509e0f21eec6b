"""The frame/flow cache: its Zarr store, and how the pipeline opens it from the config."""

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twostream.cache.codecs import codec_fingerprint
from twostream.cache.frames import FrameSelection
from twostream.cache.store import COMPLETE, FAILED, CacheLayout, FlowCache, source_signature
from twostream.data.catalog import MultiTaskLists
from twostream.data.splits import SplitLists, Video
from twostream.errors import StageError
from twostream.fingerprint import counted


def frame_selection(cfg: DictConfig) -> FrameSelection:
    """Which RGB frames the cache keeps (``cache.frames``, with the test protocol's positions)."""
    frames = cfg.cache.get("frames")
    return FrameSelection.from_config(None if frames is None else OmegaConf.to_container(frames, resolve=True),
                                      test_positions=cfg.test.num_positions)


def cache_fingerprint(cfg: DictConfig, frames: FrameSelection | None = None) -> dict[str, Any]:
    """The settings a cached video depends on, counted by :func:`twostream.fingerprint.counted`'s
    rule; a cache made with others is refused. The codecs and the frames kept count as what they
    change in the stored values. ``frames`` overrides the config's frame selection (a private
    cache that keeps every frame)."""
    fingerprint = counted(cfg, {"estimator": "flow.name", "params": "flow.params", "bound": "cache.bound",
                                "short_side": "dataset.short_side", "backward": "cache.backward"})
    fingerprint |= {"flow_codec": codec_fingerprint(cfg.cache.flow_codec),
                    "frames_codec": codec_fingerprint(cfg.cache.frames_codec)}
    kept = (frames or frame_selection(cfg)).fingerprint()
    if kept is not None:  # every frame: recorded as caches made before the setting existed are
        fingerprint["frames"] = kept
    return fingerprint


def cache_layout(cfg: DictConfig) -> CacheLayout:
    """How the extract stage stores arrays (``conf/cache``)."""
    return CacheLayout(flow_codec=OmegaConf.to_container(cfg.cache.flow_codec, resolve=True),
                       frames_codec=OmegaConf.to_container(cfg.cache.frames_codec, resolve=True),
                       flows_per_chunk=cfg.cache.flows_per_chunk, frames_per_chunk=cfg.cache.frames_per_chunk,
                       frames=frame_selection(cfg))


def open_cache(cfg: DictConfig, writable: bool = False) -> FlowCache:
    """The cache at ``cfg.cache.path``, checked against the config's flow settings."""
    return FlowCache(cfg.cache.path, cache_fingerprint(cfg), writable=writable,
                     rebuild=writable and cfg.cache.rebuild, layout=cache_layout(cfg),
                     in_memory=not writable and cfg.cache.in_memory)


def usable_lists(lists: SplitLists, cache: FlowCache, min_frames: int) -> tuple[SplitLists, dict[str, str]]:
    """Every task's lists without the videos a run cannot use, and ``{video id: why}`` for those.

    A video is left out when the cache does not hold it for its current file (it failed, changed
    since extraction, or was never extracted) or when it has fewer than ``min_frames`` frames (the
    longest flow stack the run's streams take needs L+1). Raises StageError when a task is left
    without training or test videos.
    """
    left_out: dict[str, str] = {}

    def usable(video: Video) -> bool:
        attrs = cache.attrs(video.id)
        if cache.status(video.id, source_signature(video.path)) != COMPLETE:
            left_out[video.id] = (f"extraction failed: {attrs.get('reason', '')}" if attrs and attrs.get("status") == FAILED
                                  else "not in the cache for its current file (run stage=extract)")
            return False
        frames = attrs["num_frames"]
        if frames < min_frames:
            left_out[video.id] = f"{frames} frames, fewer than the {min_frames} a flow stack of this run needs"
            return False
        return True

    def keep(task: SplitLists, with_test: bool) -> SplitLists:
        # Another task of a multi-task run only trains: its test videos are neither extracted nor used.
        kept = dataclasses.replace(task, train=[v for v in task.train if usable(v)],
                                   val=[v for v in task.val if usable(v)],
                                   test=[v for v in task.test if usable(v)] if with_test else [])
        for what in ("train", "val", "test") if with_test else ("train",):
            if getattr(task, what) and not getattr(kept, what):
                raise StageError(f"none of the {len(getattr(task, what))} {what} videos can be used (first: "
                                 f"{getattr(task, what)[0].id}: {left_out[getattr(task, what)[0].id]}); "
                                 f"see the cache {cache.path}")
        return kept

    first = keep(lists, with_test=True)
    if isinstance(lists, MultiTaskLists):
        first = dataclasses.replace(first, others=tuple(keep(task, with_test=False) for task in lists.others))
    return first, left_out
