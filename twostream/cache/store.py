"""The Zarr v3 cache of decoded frames and quantised flow, one group per video.

Layout (documented in docs/formats.md)::

    <cache>.zarr/                      root attrs: {"format": 3, "fingerprint": {...}}
      videos/<video id>/               group attrs: {"status": "complete" | "failed", "reason": ...,
                                                    "source": {"size": ..., "mtime_ns": ...},
                                                    "settings": <fingerprint>, "versions": {...},
                                                    "num_frames": T, "frame_indices": [...]}
        frames    (K, H, W, 3)    uint8 RGB, resized as the fingerprint says: the K frames of the
                                  source video listed in ``frame_indices`` (all T unless the
                                  fingerprint's ``frames`` says otherwise, :mod:`twostream.cache.frames`)
        flow_fwd  (T-1, 2, H, W)  uint8; field t is the flow from frame t to frame t+1
        flow_bwd  (T-1, 2, H, W)  uint8, only when the fingerprint says ``backward``; field t is
                                  the flow from frame t+1 back to frame t
      incoming/                        writers' work area (not a Zarr node)

Flow channel 0 is x, 1 is y; pixels = q * 2*bound/255 - bound (:mod:`twostream.flow.quantize`).
:meth:`FlowCache.read_flow` and :meth:`FlowCache.write_video` speak pixels and quantise with the
cache's own bound, so no caller needs to know it. Each array is one shard file
(a video is a handful of files) of chunks along time, compressed as the writer's
:class:`CacheLayout` says (JPEG or zstd, see :mod:`twostream.cache.codecs`).

Writes are atomic: a video is written as a complete Zarr group (status included) under
``incoming/`` and then moved into ``videos/`` with one ``rename``, so a reader sees a video
completely or not at all, whatever moment a writer is killed at. A writer clears what an
earlier, killed writer of the same video left in ``incoming/``. Several writers may fill one
cache at once as long as each writes its own videos (``extract.shard=I/N``); creating the cache is
race-free too (the root is built aside and renamed into place; the losers open the winner's).
``source`` records the size and modification time of the video file a video was made from: a
video whose file has changed since counts as not extracted.
"""

import contextlib
import importlib.metadata
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import zarr
from zarr.errors import ContainsGroupError

from twostream.cache.codecs import chunk_codecs
from twostream.cache.frames import FrameSelection
from twostream.cache.shards import ShardedArray
from twostream.errors import MissingDataError, UserError
from twostream.fingerprint import differences
from twostream.flow import dequantize, quantize

# 3: every complete video records num_frames and frame_indices. Format 2 was written by three
# versions of the extract stage, and is read through _video_attrs_2_to_3.
FORMAT_VERSION = 3
OLDEST_FORMAT = 2  # older caches are refused: cache.rebuild=true extracts them again
COMPLETE, FAILED = "complete", "failed"
DIRECTIONS = {"fwd": "flow_fwd", "bwd": "flow_bwd"}
_VERSIONED_PACKAGES = ("torch", "zarr", "numpy", "imagecodecs", "twostream")


def source_signature(path: str | Path) -> dict[str, int | None]:
    """Size and modification time of a source video (None for a missing file): cheap change detection."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return {"size": None, "mtime_ns": None}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a cached video depends on (recorded in its attrs)."""
    versions: dict[str, str | None] = {"opencv": cv2.__version__}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class CacheMismatchError(UserError, ValueError):
    """The cache on disk was made with other settings than the ones asked for."""


def _format_problem(version: Any) -> str | None:
    """Why a cache of format ``version`` cannot be read, or None when it can."""
    if isinstance(version, int) and OLDEST_FORMAT <= version <= FORMAT_VERSION:
        return None
    made_by = "a newer" if isinstance(version, int) and version > FORMAT_VERSION else "an older"
    return (f"format: cache has {version!r} ({made_by} twostream), this version reads formats "
            f"{OLDEST_FORMAT} to {FORMAT_VERSION}")


def _video_attrs_2_to_3(attrs: dict[str, Any], video_dir: Path) -> dict[str, Any]:
    """A format-2 video's attributes as format 3 records them (the cache's one upgrade step).

    Format 2 videos extracted before the cache recorded ``num_frames`` (2026-12-03) or
    ``frame_indices`` (2026-12-06) kept every frame: their ``frames`` array is the whole video.
    """
    if attrs.get("status") != COMPLETE or "frame_indices" in attrs:
        return attrs
    stored = json.loads((video_dir / "frames" / "zarr.json").read_text())["shape"][0]
    return {**attrs, "num_frames": stored, "frame_indices": list(range(stored))}


def _group_attrs(directory: Path) -> dict[str, Any] | None:
    """The attributes of the Zarr group stored in ``directory``, or None if there is none."""
    try:
        meta = json.loads((directory / "zarr.json").read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    return meta.get("attributes", {}) if meta.get("node_type") == "group" else None


def frames_overrides(frames: Mapping[str, Any] | None) -> str:
    """The config overrides that ask for a cache's recorded frame selection (None: every frame)."""
    if not frames:
        return "cache.frames.keep=all"
    names = {"test_positions": "test.num_positions"}
    return " ".join(f"{names.get(key, 'cache.frames.' + key)}={value}" for key, value in frames.items())


_LOSSLESS = {"name": "zstd", "level": 3}


@dataclass(frozen=True)
class CacheLayout:
    """How a writer stores arrays: chunk codecs ``{name, level}`` and chunk lengths along time.

    The pipeline builds it from ``conf/cache``; the default here (lossless, one field or frame
    per chunk) serves scripts and tests that write a cache by hand.
    """

    flow_codec: Mapping[str, Any] = field(default_factory=lambda: dict(_LOSSLESS))
    frames_codec: Mapping[str, Any] = field(default_factory=lambda: dict(_LOSSLESS))
    flows_per_chunk: int = 1
    frames_per_chunk: int = 1
    frames: FrameSelection = field(default_factory=FrameSelection)  # which RGB frames are kept


class FlowCache:
    """Read (and, with ``writable=True``, write) the frame/flow cache at ``path``.

    ``fingerprint`` is the flow settings the caller expects (estimator, its parameters, bound,
    resize, ``backward``, lossy codecs). Opening an existing cache whose fingerprint differs
    raises :class:`CacheMismatchError` naming the differing keys, unless ``rebuild`` is true
    (writable caches only), in which case it is deleted and started again. ``layout`` says how
    a writer stores arrays (readers take it from the arrays' metadata). ``in_memory`` keeps each video's decoded arrays in RAM after their first read
    (for datasets that fit).
    """

    def __init__(self, path: str | Path, fingerprint: Mapping[str, Any], *, writable: bool = False,
                 rebuild: bool = False, layout: CacheLayout | None = None, in_memory: bool = False) -> None:
        self.path = Path(path)
        self.fingerprint = dict(fingerprint)
        self.layout = layout or CacheLayout()
        self._in_memory = in_memory
        self._arrays: dict[tuple[str, str], ShardedArray | np.ndarray] = {}
        self._frame_indices: dict[str, tuple[int, np.ndarray]] = {}
        if writable and self.layout.frames.fingerprint() != self.fingerprint.get("frames"):
            raise ValueError(f"the layout keeps frames {self.layout.frames} but the fingerprint records "
                             f"{self.fingerprint.get('frames')}: build both from one FrameSelection")
        if not (self.path / "zarr.json").is_file():
            if not writable:
                raise MissingDataError(f"no flow cache at {self.path}: run the extract stage first "
                                        "(python -m twostream stage=extract ...)")
            self._create()
        stored = dict(zarr.open_group(self.path, mode="r").attrs)
        changed = self._differences(stored)
        self.format = stored.get("format")
        if changed and writable and rebuild:
            self._delete()
            self._create()
            self.format = FORMAT_VERSION
        elif changed:
            frames_hint = "\n"
            if any(line.startswith("frames") for line in changed):
                frames_hint = (f"\nIt keeps other RGB frames: to read it, run with "
                               f"{frames_overrides(stored['fingerprint'].get('frames'))}; or ")
            raise CacheMismatchError(
                f"flow cache {self.path} was made with other settings:\n  " + "\n  ".join(changed)
                + frames_hint + "use another cache.path, or cache.rebuild=true to delete it and extract again.")

    @classmethod
    def open(cls, path: str | Path, *, in_memory: bool = False) -> "FlowCache":
        """An existing cache for reading, with the settings it was made with (no config needed)."""
        path = Path(path)
        if not (path / "zarr.json").is_file():
            raise MissingDataError(f"no flow cache at {path}")
        attrs = dict(zarr.open_group(path, mode="r").attrs)
        if problem := _format_problem(attrs.get("format")):
            raise CacheMismatchError(f"flow cache {path}: {problem}")
        return cls(path, attrs["fingerprint"], in_memory=in_memory)

    # -- creating ----------------------------------------------------------------------------
    def _differences(self, stored: dict[str, Any]) -> list[str]:
        if problem := _format_problem(stored.get("format")):
            return [problem]
        return differences(stored["fingerprint"], self.fingerprint, "cache")

    def _create(self) -> None:
        # Build the root aside and rename it into place: when N shard workers start at once on
        # an empty path, exactly one rename wins and the others open the winner's cache.
        if self.path.exists() and any(self.path.iterdir()) and not (self.path / "zarr.json").is_file():
            raise FileExistsError(f"{self.path} exists and is not a flow cache; choose another cache.path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.creating")
        root = zarr.open_group(staging, mode="w")
        root.attrs.update({"format": FORMAT_VERSION, "fingerprint": self.fingerprint})
        root.require_group("videos")
        (staging / "incoming").mkdir()
        try:
            os.rename(staging, self.path)
        except OSError:  # another writer created it first (a non-empty directory is never replaced)
            shutil.rmtree(staging)

    def _delete(self) -> None:
        doomed = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.deleting")
        os.rename(self.path, doomed)
        shutil.rmtree(doomed)

    # -- reading -----------------------------------------------------------------------------
    @property
    def bound(self) -> float:
        """The quantisation bound (pixels) of the stored flow."""
        return float(self.fingerprint["bound"])

    @property
    def backward(self) -> bool:
        """Whether the cache stores backward flow (``flow_bwd``) too."""
        return bool(self.fingerprint.get("backward", False))

    def _video_dir(self, video_id: str) -> Path:
        parts = video_id.split("/")
        if not video_id or video_id.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid video id {video_id!r} (a relative path without '.' or '..' parts)")
        return self.path / "videos" / video_id

    def _statuses(self) -> dict[str, dict[str, Any]]:
        # Video ids may contain "/" (class folders): walk the tree; a group with a status is a
        # video, and nothing below it is.
        videos = self.path / "videos"
        found = {}
        for directory, subdirs, _ in os.walk(videos):
            attrs = _group_attrs(Path(directory))
            if attrs is not None and "status" in attrs:
                found[Path(directory).relative_to(videos).as_posix()] = attrs
                subdirs.clear()
        return found

    def video_ids(self) -> list[str]:
        """Ids of the completely written videos, sorted."""
        return sorted(v for v, attrs in self._statuses().items() if attrs.get("status") == COMPLETE)

    def failures(self) -> dict[str, str]:
        """{video id: reason} for videos that could not be extracted."""
        return {v: attrs.get("reason", "") for v, attrs in sorted(self._statuses().items())
                if attrs.get("status") == FAILED}

    def attrs(self, video_id: str) -> dict[str, Any] | None:
        """A processed video's attributes (status, source, settings, library versions, and for a
        complete one ``num_frames`` and ``frame_indices``) as the current format records them, or None."""
        video_dir = self._video_dir(video_id)
        attrs = _group_attrs(video_dir)
        return _video_attrs_2_to_3(attrs, video_dir) if attrs is not None and self.format == 2 else attrs

    def status(self, video_id: str, source: Mapping[str, Any]) -> str | None:
        """``"complete"`` or ``"failed"`` if the video was processed from this very source file, else None."""
        attrs = self.attrs(video_id)
        if attrs is None or attrs.get("source") != dict(source):
            return None
        return attrs.get("status")

    def _complete_attrs(self, video_id: str) -> dict[str, Any]:
        attrs = self.attrs(video_id)
        if attrs is None or attrs.get("status") != COMPLETE:
            raise KeyError(f"video {video_id!r} is not completely extracted in {self.path}")
        return attrs

    def _array(self, video_id: str, name: str) -> ShardedArray | np.ndarray:
        # Parsing metadata and the shard index costs more than a read: keep them per video,
        # since a training loop reads the same videos over and over.
        key = (video_id, name)
        if key not in self._arrays:
            self._complete_attrs(video_id)
            array = ShardedArray(self._video_dir(video_id) / name)
            self._arrays[key] = array.read(0, array.shape[0]) if self._in_memory else array
        return self._arrays[key]

    def _frames_stored(self, video_id: str) -> tuple[int, np.ndarray]:
        # Kept per video, as the arrays are: a training loop asks for every sample.
        if video_id not in self._frame_indices:
            attrs = self._complete_attrs(video_id)
            self._frame_indices[video_id] = (int(attrs["num_frames"]),
                                             np.asarray(attrs["frame_indices"], dtype=np.int64))
        return self._frame_indices[video_id]

    def num_frames(self, video_id: str) -> int:
        """Number of frames of the source video (the cache may store fewer RGB frames: see
        :meth:`frame_indices`)."""
        return self._frames_stored(video_id)[0]

    def frame_indices(self, video_id: str) -> np.ndarray:
        """The sorted indices (in the source video) of the RGB frames stored for a video."""
        return self._frames_stored(video_id)[1]

    def num_flows(self, video_id: str) -> int:
        """Number of stored flow fields of a video in each direction (frames - 1)."""
        return int(self._array(video_id, "flow_fwd").shape[0])

    def _read(self, video_id: str, name: str, start: int, length: int, unit: str) -> np.ndarray:
        """Items [start, start+length) of one of a video's arrays, range-checked."""
        array = self._array(video_id, name)
        stop = start + length
        if start < 0 or stop > array.shape[0]:
            raise IndexError(f"{unit} [{start}, {stop}) out of range for {video_id!r} with {array.shape[0]} {unit}")
        return array[start:stop] if isinstance(array, np.ndarray) else array.read(start, stop)

    def read_frames(self, video_id: str, start: int, length: int = 1) -> np.ndarray:
        """uint8 RGB frames [start, start+length) of the source video as (length, H, W, 3); each
        must be stored (:meth:`frame_indices`)."""
        indices = self.frame_indices(video_id)
        wanted = np.arange(start, start + length)
        slots = np.searchsorted(indices, wanted)
        stored = (slots < len(indices)) & (indices[np.minimum(slots, len(indices) - 1)] == wanted)
        if not stored.all():
            missing = int(wanted[~stored][0])
            raise IndexError(f"frame {missing} of {video_id!r} is not stored in {self.path}, which keeps "
                             f"{len(indices)} of its {self.num_frames(video_id)} frames (cache.frames "
                             f"{self.fingerprint.get('frames') or 'all'})")
        return self._read(video_id, "frames", int(slots[0]) if length else 0, length, "frames")

    def read_flow(self, video_id: str, start: int, length: int, direction: str = "fwd", *,
                  quantized: bool = False) -> np.ndarray:
        """Flow fields [start, start+length) as float32 pixels (length, 2, H, W); with ``quantized``,
        the stored uint8 values instead.

        ``direction="fwd"``: field t is the flow from frame t to frame t+1; ``"bwd"`` (caches made
        with ``cache.backward=true``): field t is the flow from frame t+1 back to frame t.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
        if direction == "bwd" and not self.backward:
            raise ValueError(f"flow cache {self.path} holds no backward flow; extract with cache.backward=true")
        stored = self._read(video_id, DIRECTIONS[direction], start, length, "flow fields")
        return stored if quantized else dequantize(stored, self.bound)

    # -- writing -----------------------------------------------------------------------------
    def _staging(self, video_id: str) -> tuple[Path, str]:
        # quote() escapes "+" and every glob wildcard, so "<quoted id>+*" matches exactly this
        # video's leftovers.
        prefix = quote(video_id, safe="") + "+"
        return self.path / "incoming" / f"{prefix}{uuid.uuid4().hex}", prefix

    def _commit(self, video_id: str, staging: Path, prefix: str) -> None:
        """Move a completely written group from ``incoming/`` to ``videos/<id>`` (replacing any old one)."""
        target = self._video_dir(video_id)
        parent = self.path / "videos"
        for part in video_id.split("/")[:-1]:  # class folders must be groups for Zarr to walk them
            parent = parent / part
            if not (parent / "zarr.json").is_file():
                with contextlib.suppress(ContainsGroupError):  # another shard made it meanwhile
                    zarr.open_group(parent, mode="a")
        self._arrays = {k: v for k, v in self._arrays.items() if k[0] != video_id}
        self._frame_indices.pop(video_id, None)
        if target.exists():  # an old record (failed, or from a changed source): move it aside first
            old = staging.with_name(f"{prefix}{uuid.uuid4().hex}.old")
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old)
        else:
            os.rename(staging, target)

    def _clear_leftovers(self, prefix: str) -> None:
        for leftover in (self.path / "incoming").glob(prefix + "*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def _write(self, video_id: str, arrays: Mapping[str, tuple[np.ndarray, Mapping[str, Any], int]],
               attrs: Mapping[str, Any]) -> None:
        staging, prefix = self._staging(video_id)
        self._clear_leftovers(prefix)
        try:
            group = zarr.open_group(staging, mode="w")
            for name, (data, codec, per_chunk) in arrays.items():
                serializer, *compressors = chunk_codecs(codec)
                chunk = (min(per_chunk, data.shape[0]),) + data.shape[1:]
                shard = (-(-data.shape[0] // chunk[0]) * chunk[0],) + data.shape[1:]
                group.create_array(name, shape=data.shape, dtype="uint8", chunks=chunk, shards=shard,
                                   serializer=serializer, compressors=compressors)[:] = data
            group.attrs.update({**attrs, "settings": self.fingerprint, "versions": library_versions()})
            self._commit(video_id, staging, prefix)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def write_video(self, video_id: str, frames: np.ndarray, flow_fwd: np.ndarray,
                    flow_bwd: np.ndarray | None = None, *, source: Mapping[str, Any]) -> None:
        """Store one video (its uint8 frames (T, H, W, 3), of which the layout's ``frames`` selection
        is kept, and its flow (T-1, 2, H, W)) atomically, as complete.

        Flow is float pixels, quantised here with the cache's bound, or uint8 values that are
        already quantised with it (:func:`twostream.flow.quantize`). ``flow_bwd`` (field t: from
        frame t+1 to frame t) is required exactly when the cache stores backward flow.
        """
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must be uint8, not {frames.dtype}")
        flow_fwd = self._as_stored(flow_fwd)
        flow_bwd = None if flow_bwd is None else self._as_stored(flow_bwd)
        if (flow_bwd is not None) != self.backward:
            raise ValueError(f"this cache {'needs' if self.backward else 'takes no'} backward flow "
                             f"(cache.backward={str(self.backward).lower()})")
        if flow_fwd.shape[0] != frames.shape[0] - 1 or (flow_bwd is not None and flow_bwd.shape != flow_fwd.shape):
            raise ValueError(f"expected T-1 = {frames.shape[0] - 1} flow fields per direction, got "
                             f"{flow_fwd.shape[0]}" + ("" if flow_bwd is None else f" and {flow_bwd.shape[0]}"))
        kept = self.layout.frames.indices(len(frames))
        arrays = {"frames": (frames[kept], self.layout.frames_codec, self.layout.frames_per_chunk),
                  "flow_fwd": (flow_fwd, self.layout.flow_codec, self.layout.flows_per_chunk)}
        if flow_bwd is not None:
            arrays["flow_bwd"] = (flow_bwd, self.layout.flow_codec, self.layout.flows_per_chunk)
        self._write(video_id, arrays, {"status": COMPLETE, "source": dict(source), "num_frames": len(frames),
                                       "frame_indices": kept})

    def _as_stored(self, flow: np.ndarray) -> np.ndarray:
        """Flow as the cache stores it: uint8 is taken as quantised already, pixels are quantised."""
        return flow if flow.dtype == np.uint8 else quantize(flow, self.bound)

    def mark_failed(self, video_id: str, reason: str, *, source: Mapping[str, Any]) -> None:
        """Record that a video could not be extracted, and why."""
        self._write(video_id, {}, {"status": FAILED, "reason": reason, "source": dict(source)})
