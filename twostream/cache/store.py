"""The Zarr v3 cache of decoded frames and quantised flow, one group per video.

Layout (documented in the README)::

    <cache>.zarr/                      root attrs: {"format": 1, "fingerprint": {...}}
      videos/<video id>/               group attrs: {"status": "complete" | "failed", "reason": ...,
                                                    "source": {"size": ..., "mtime_ns": ...}}
        frames    (T, H, W, 3)    uint8 RGB, resized as the fingerprint says
        flow_fwd  (T-1, 2, H, W)  uint8, channel 0 = x, 1 = y, quantised with ``bound``

A video's ``status`` attribute is written last, after its arrays, so a reader never serves a
video whose writing was interrupted; the writer deletes and redoes such groups. ``source``
records the size and modification time of the video file it was made from: a video whose
file has changed since counts as not extracted.
"""

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

FORMAT_VERSION = 1
COMPLETE, FAILED = "complete", "failed"


def source_signature(path: str | Path) -> dict[str, int | None]:
    """Size and modification time of a source video (None for a missing file): cheap change detection."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return {"size": None, "mtime_ns": None}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class CacheMismatchError(ValueError):
    """The cache on disk was made with other settings than the ones asked for."""


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two nested fingerprints."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: cache has {a!r}, config asks for {b!r}")
    return lines


class FlowCache:
    """Read (and, with ``writable=True``, write) the frame/flow cache at ``path``.

    ``fingerprint`` is the flow settings the caller expects (estimator, its parameters, bound,
    resize). Opening an existing cache whose fingerprint differs raises
    :class:`CacheMismatchError` naming the differing keys, unless ``rebuild`` is true, in
    which case a writable cache is wiped and started again. ``in_memory`` keeps each video's
    arrays in RAM after their first read, which removes Zarr's per-read overhead for datasets
    that fit in memory.
    """

    def __init__(self, path: str | Path, fingerprint: Mapping[str, Any], *, writable: bool = False,
                 rebuild: bool = False, compression_level: int = 3, in_memory: bool = False) -> None:
        self.path = Path(path)
        self.fingerprint = dict(fingerprint)
        self._codec = ZstdCodec(level=compression_level)
        self._in_memory = in_memory
        self._arrays: dict[tuple[str, str], zarr.Array | np.ndarray] = {}
        exists = (self.path / "zarr.json").is_file()
        if not exists and not writable:
            raise FileNotFoundError(f"no flow cache at {self.path}: run the extract stage first "
                                    "(python -m twostream stage=extract ...)")
        if exists and rebuild and writable:
            shutil.rmtree(self.path)
            exists = False
        if exists:
            self.root = zarr.open_group(self.path, mode="a" if writable else "r")
            self._check_fingerprint(dict(self.root.attrs.get("fingerprint", {})))
        else:
            self.root = zarr.open_group(self.path, mode="w")
            self.root.attrs.update({"format": FORMAT_VERSION, "fingerprint": self.fingerprint})
            self.root.require_group("videos")

    def _check_fingerprint(self, stored: dict[str, Any]) -> None:
        differences = _diff(stored, self.fingerprint)
        if differences:
            raise CacheMismatchError(
                f"flow cache {self.path} was made with other settings:\n  " + "\n  ".join(differences)
                + "\nUse another cache.path, or cache.rebuild=true to delete it and extract again.")

    # -- reading ---------------------------------------------------------------------------
    def _statuses(self) -> dict[str, dict[str, Any]]:
        # Video ids may contain "/" (class folders), so walk the whole tree; only groups that
        # carry a status are videos.
        return {name: dict(node.attrs) for name, node in self.root["videos"].members(max_depth=None)
                if isinstance(node, zarr.Group) and "status" in node.attrs}

    def video_ids(self) -> list[str]:
        """Ids of the completely written videos, sorted."""
        return sorted(v for v, attrs in self._statuses().items() if attrs.get("status") == COMPLETE)

    def failures(self) -> dict[str, str]:
        """{video id: reason} for videos that could not be extracted."""
        return {v: attrs.get("reason", "") for v, attrs in sorted(self._statuses().items())
                if attrs.get("status") == FAILED}

    def _array(self, video_id: str, name: str) -> zarr.Array | np.ndarray:
        # Opening a group and its arrays parses several JSON files: keep the handles, since a
        # training loop reads the same videos over and over.
        key = (video_id, name)
        if key not in self._arrays:
            group = self.root[f"videos/{video_id}"]
            if group.attrs.get("status") != COMPLETE:
                raise KeyError(f"video {video_id!r} is not completely extracted in {self.path}")
            self._arrays[key] = group[name][:] if self._in_memory else group[name]
        return self._arrays[key]

    @property
    def bound(self) -> float:
        """The quantisation bound (pixels) of the stored flow."""
        return float(self.fingerprint["bound"])

    def num_frames(self, video_id: str) -> int:
        """Number of stored RGB frames of a video."""
        return int(self._array(video_id, "frames").shape[0])

    def num_flows(self, video_id: str) -> int:
        """Number of stored forward flow fields of a video (frames - 1)."""
        return int(self._array(video_id, "flow_fwd").shape[0])

    def read_frames(self, video_id: str, start: int, length: int = 1) -> np.ndarray:
        """uint8 RGB frames [start, start+length) as (length, H, W, 3)."""
        return self._array(video_id, "frames")[start:start + length]

    def read_flow(self, video_id: str, start: int, length: int, direction: str = "fwd") -> np.ndarray:
        """uint8 quantised flow fields [start, start+length) as (length, 2, H, W)."""
        if direction != "fwd":
            raise ValueError(f"direction {direction!r} is not in this cache (it stores 'fwd' only)")
        flow = self._array(video_id, "flow_fwd")
        if start < 0 or start + length > flow.shape[0]:
            raise IndexError(f"flow [{start}, {start + length}) out of range for {video_id!r} "
                             f"with {flow.shape[0]} fields")
        return flow[start:start + length]

    def status(self, video_id: str, source: Mapping[str, Any]) -> str | None:
        """``"complete"`` or ``"failed"`` if the video was processed from this very source file, else None."""
        try:
            attrs = self.root[f"videos/{video_id}"].attrs
        except KeyError:
            return None
        if attrs.get("source") != dict(source):
            return None
        return attrs.get("status")

    # -- writing ---------------------------------------------------------------------------
    def _fresh_group(self, video_id: str) -> zarr.Group:
        # A group without a status is what an interrupted writer left: drop it and start over.
        key = f"videos/{video_id}"
        self._arrays = {k: v for k, v in self._arrays.items() if k[0] != video_id}
        if key in self.root:
            del self.root[key]
        return self.root.require_group(key)

    def write_video(self, video_id: str, frames: np.ndarray, flow_fwd: np.ndarray, *,
                    source: Mapping[str, Any], flows_per_chunk: int) -> None:
        """Store one video's frames (T, H, W, 3) and quantised flow (T-1, 2, H, W), then mark it complete."""
        if flow_fwd.dtype != np.uint8 or frames.dtype != np.uint8:
            raise TypeError("frames and flow must be uint8 (quantise the flow first)")
        group = self._fresh_group(video_id)
        # One shard per array keeps a video to a handful of files; chunks of a few fields keep
        # random reads of an L-stack from decompressing the whole video.
        for name, data in (("frames", frames), ("flow_fwd", flow_fwd)):
            chunk = (min(flows_per_chunk, data.shape[0]),) + data.shape[1:]
            shard = (-(-data.shape[0] // chunk[0]) * chunk[0],) + data.shape[1:]
            array = group.create_array(name, shape=data.shape, dtype="uint8", chunks=chunk, shards=shard,
                                       compressors=self._codec)
            array[:] = data
        group.attrs.update({"status": COMPLETE, "source": dict(source)})

    def mark_failed(self, video_id: str, reason: str, *, source: Mapping[str, Any]) -> None:
        """Record that a video could not be extracted, and why."""
        self._fresh_group(video_id).attrs.update({"status": FAILED, "reason": reason, "source": dict(source)})
