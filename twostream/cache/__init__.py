"""The frame/flow cache: its Zarr store, and how the pipeline opens it from the config."""

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twostream.cache.codecs import codec_fingerprint
from twostream.cache.store import COMPLETE, CacheLayout, FlowCache, source_signature
from twostream.data.splits import Video
from twostream.errors import StageError

log = logging.getLogger(__name__)


def cache_fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """The settings a cached video depends on; a cache made with others is refused."""
    return {"estimator": cfg.flow.name, "params": OmegaConf.to_container(cfg.flow.params, resolve=True),
            "bound": cfg.cache.bound, "short_side": cfg.dataset.short_side, "backward": cfg.cache.backward,
            "flow_codec": codec_fingerprint(cfg.cache.flow_codec),
            "frames_codec": codec_fingerprint(cfg.cache.frames_codec)}


def cache_layout(cfg: DictConfig) -> CacheLayout:
    """How the extract stage stores arrays (``conf/cache``)."""
    return CacheLayout(flow_codec=OmegaConf.to_container(cfg.cache.flow_codec, resolve=True),
                       frames_codec=OmegaConf.to_container(cfg.cache.frames_codec, resolve=True),
                       flows_per_chunk=cfg.cache.flows_per_chunk, frames_per_chunk=cfg.cache.frames_per_chunk)


def open_cache(cfg: DictConfig, writable: bool = False) -> FlowCache:
    """The cache at ``cfg.cache.path``, checked against the config's flow settings."""
    return FlowCache(cfg.cache.path, cache_fingerprint(cfg), writable=writable,
                     rebuild=writable and cfg.cache.rebuild, layout=cache_layout(cfg),
                     in_memory=not writable and cfg.cache.in_memory)


def cached_videos(videos: list[Video], cache: FlowCache, what: str) -> list[Video]:
    """The videos the cache holds for their current files; the others are named in the log."""
    kept = [v for v in videos if cache.status(v.id, source_signature(v.path)) == COMPLETE]
    if len(kept) < len(videos):
        dropped = sorted({v.id for v in videos} - {v.id for v in kept})
        log.warning("%d %s video(s) are not in the cache (failed, or changed since extraction: run "
                    "stage=extract) and are left out: %s", len(dropped), what, ", ".join(dropped))
    if not kept:
        raise StageError(f"none of the {what} videos is in the cache {cache.path}; run stage=extract first")
    return kept
