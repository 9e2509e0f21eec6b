"""Weights & Biases tracking: one W&B run per pipeline stage, and a reader for offline runs.

Every stage (extract, train_spatial, train_temporal, test, fuse, report) opens one run with
`start_run`. The mode comes from the `tracking` config node only:

- ``offline`` (default): everything goes to ``<dir>/wandb/offline-run-*/run-<id>.wandb``; no network.
  Upload later with ``wandb sync <run folder>``.
- ``online``: streams to the W&B server (needs an API key and network).
- ``disabled``: wandb is never initialised and nothing is written to disk.

An offline run has no ``wandb-summary.json``: its config, history and summary exist only as
protobuf ``Record`` messages in the ``.wandb`` file. wandb 0.31 ships no Python reader for that file
(the Go ``wandb-core`` writes it), so `read_offline_run` decodes its block format itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import wandb
from omegaconf import DictConfig, OmegaConf
from wandb.proto import wandb_internal_pb2 as pb

__all__ = ["MODES", "OfflineRun", "Tracker", "find_runs", "read_offline_run", "start_run"]

logger = logging.getLogger(__name__)

MODES = ("offline", "online", "disabled")

# .wandb file layout (LevelDB log format as written by wandb-core): a 7-byte file header
# (ident ":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of records, each with a 7-byte header
# (CRC-32 of type byte + data, data length, type). A record that does not fit in the rest of a
# block is split into FIRST/MIDDLE/LAST chunks; a block tail shorter than a header is zero padding.
_FILE_HEADER = struct.Struct("<4sHB")
_FILE_IDENT, _FILE_MAGIC = b":W&B", 0xBEE1
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK_SIZE = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4

_RUN_ID_ALPHABET = string.ascii_lowercase + string.digits
_WRITE_TIMEOUT_S = 30.0


class Tracker:
    """Handle on one stage's W&B run; every method is a no-op when tracking is disabled."""

    def __init__(self, run: wandb.Run | None) -> None:
        self._run = run
        self.run_dir: Path | None = Path(run.settings.sync_dir) if run is not None else None
        self._log_file: Path | None = Path(run.settings.sync_file) if run is not None else None

    @property
    def enabled(self) -> bool:
        """False when tracking is disabled: then every method is a no-op, and callers can skip the
        work of preparing what they would log."""
        return self._run is not None

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log one history row; `step` must not decrease (wandb drops older steps with a warning)."""
        if self._run is not None:
            self._run.log(dict(metrics), step=step)

    def set_summary(self, metrics: Mapping[str, Any]) -> None:
        """Set final values in the run summary (overriding the last logged history values)."""
        if self._run is not None:
            self._run.summary.update(dict(metrics))

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Log a table under `key`; it joins the current history row."""
        if self._run is not None:
            self._run.log({key: wandb.Table(columns=columns, data=rows)})

    def log_images(self, key: str, images: Sequence[np.ndarray], captions: Sequence[str]) -> None:
        """Log RGB uint8 images (H, W, 3) under `key`, each with its caption."""
        if self._run is not None:
            self._run.log({key: [wandb.Image(image, caption=caption)
                                 for image, caption in zip(images, captions, strict=True)]})

    def log_confusion_matrix(self, key: str, labels: Sequence[int], predictions: Sequence[int],
                             class_names: Sequence[str]) -> None:
        """Log a confusion matrix chart (its counts are a table: Actual, Predicted, nPredictions)."""
        if self._run is not None:
            chart = wandb.plot.confusion_matrix(y_true=[int(v) for v in labels],
                                                preds=[int(v) for v in predictions],
                                                class_names=list(class_names), title=key)
            self._run.log({key: chart})

    def log_artifact(self, paths: str | Path | Sequence[str | Path], name: str, type: str) -> None:
        """Log files and directories as one W&B artifact called `name` of the given `type`."""
        if self._run is None:
            return
        artifact = wandb.Artifact(name, type=type)
        for path in [paths] if isinstance(paths, str | Path) else paths:
            path = Path(path)
            # "immutable": reference the files in place instead of copying them into wandb's staging
            # area in the user's home; our outputs are not rewritten after being logged.
            if path.is_dir():
                artifact.add_dir(str(path), policy="immutable")
            elif path.is_file():
                artifact.add_file(str(path), policy="immutable")
            else:
                raise FileNotFoundError(f"artifact path does not exist: {path}")
        self._run.log_artifact(artifact)

    def finish(self, exit_code: int | None = None) -> None:
        """Finish the run (a non-zero `exit_code` marks it failed) and wait until its `.wandb` file is
        complete on disk; calling it twice is harmless."""
        if self._run is None or self._log_file is None:
            return
        self._run.finish(exit_code=exit_code)
        _wait_for_exit_record(self._log_file)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def start_run(
    tracking_cfg: Mapping[str, Any], *, stage: str, group: str, config: Mapping[str, Any]
) -> Tracker:
    """Start one W&B run for a pipeline stage.

    Args:
        tracking_cfg: the `tracking` config node (DictConfig or dict) with keys `mode`
            (offline | online | disabled), `project`, `entity` (optional) and `dir` (wandb writes
            into `<dir>/wandb/`).
        stage: the stage name, used as the run's job_type.
        group: the experiment name, used as the run's group; the run is named f"{group}-{stage}".
        config: the whole resolved config (nested dicts and lists are kept).

    Returns:
        A `Tracker`, usable as a context manager that finishes the run (exit code 1 on exception).
    """
    mode = tracking_cfg["mode"]
    if mode not in MODES:
        raise ValueError(f"tracking.mode must be one of {MODES}, got {mode!r}")
    if mode == "disabled":
        return Tracker(None)

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    run_root = Path(tracking_cfg["dir"])
    run_root.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(
        mode=mode,
        quiet=True,  # keep warnings (e.g. dropped out-of-order steps) but not the banners
        console="off",  # no stdout/stderr capture: Hydra already logs to a file, and pytest stays clean
        x_disable_stats=True,  # no system-metrics sampler process
    )
    run = wandb.init(
        project=tracking_cfg["project"],
        entity=tracking_cfg.get("entity"),
        dir=str(run_root),
        # An explicit fresh id, so that a WANDB_RUN_ID left in the environment cannot make all
        # stages write into one run.
        id="".join(secrets.choice(_RUN_ID_ALPHABET) for _ in range(8)),
        name=f"{group}-{stage}",
        group=group,
        job_type=stage,
        config=dict(config),
        # Never hand back an unfinished earlier run (wandb's default outside notebooks).
        reinit="create_new",
        settings=settings,
    )
    return Tracker(run)


@dataclass
class OfflineRun:
    """What an offline run recorded, as plain Python values."""

    config: dict[str, Any]
    summary: dict[str, Any]  # includes the last logged history values and wandb's _step/_runtime/_timestamp
    history: list[dict[str, Any]]  # one dict per logged step, including wandb's _step/_runtime/_timestamp
    job_type: str | None
    group: str | None
    artifacts: list[str]  # names of artifacts logged with Tracker.log_artifact
    artifact_files: dict[str, list[str]]  # artifact name -> the paths of its files (as in its manifest)
    exit_code: int | None = None  # None when the run never finished (killed, or still running)
    git_commit: str | None = None  # recorded by wandb when the working directory is in a git repo
    name: str | None = None  # the run's display name


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Read an offline run's `.wandb` file; `run_dir` is the `offline-run-*` folder.

    For a run that is still going, or was killed, only whole 32 KiB blocks are on disk (wandb-core
    writes the last block when the run finishes), so its latest records are missing.
    """
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    artifacts: list[str] = []
    artifact_files: dict[str, list[str]] = {}
    out = OfflineRun(
        config=config, summary=summary, history=history, job_type=None, group=None, artifacts=artifacts,
        artifact_files=artifact_files,
    )
    for record in _iter_records(_wandb_file(run_dir)):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.job_type, out.group = run.job_type or None, run.run_group or None
            out.name = run.display_name or None
            out.git_commit = run.git.commit or out.git_commit
            _apply_items(config, run.config.update, ())
        elif kind == "config":
            _apply_items(config, record.config.update, record.config.remove)
        elif kind == "summary":
            _apply_items(summary, record.summary.update, record.summary.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply_items(row, record.history.item, ())
            history.append(row)
        elif kind == "artifact" and record.artifact.type != "run_table":
            # run_table artifacts are created by wandb itself for each logged table.
            artifacts.append(record.artifact.name)
            artifact_files[record.artifact.name] = [e.path for e in record.artifact.manifest.contents]
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
    # "_wandb" holds wandb's own bookkeeping, not values the stage logged.
    config.pop("_wandb", None)
    summary.pop("_wandb", None)
    return out


def find_runs(wandb_root: str | Path) -> list[Path]:
    """All offline run folders (`offline-run-*`) anywhere under `wandb_root`, oldest first."""
    runs = [p for p in Path(wandb_root).rglob("offline-run-*") if p.is_dir() and any(p.glob("run-*.wandb"))]
    return sorted(runs, key=_start_time)


def _start_time(run_dir: Path) -> float:
    """Start time from the run record (folder names only have one-second resolution)."""
    wandb_file = _wandb_file(run_dir)
    for record in _iter_records(wandb_file):
        if record.WhichOneof("record_type") == "run":
            return record.run.start_time.seconds + record.run.start_time.nanos * 1e-9
    return wandb_file.stat().st_mtime  # no run record on disk yet: the run is live, or was killed early


def _wandb_file(run_dir: str | Path) -> Path:
    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb file in {run_dir}, found {len(files)}")
    return files[0]


def _wait_for_exit_record(path: Path) -> None:
    """Wait until the exit record, which wandb-core writes last, is in the `.wandb` file.

    wandb-core keeps the log's unfinished 32 KiB block in memory until it closes the run's stream, and
    run.finish() only asks for that close without waiting for it: right after finish() the file can
    still lack its last records (seen in about one run in five here).
    """
    deadline = time.monotonic() + _WRITE_TIMEOUT_S
    while True:
        last = deque(_iter_payloads(path), maxlen=1)
        if last and _parse(last[0]).HasField("exit"):
            return
        if time.monotonic() > deadline:
            logger.warning(
                "wandb has not completed %s after %.0f s; it may lack its last records",
                path,
                _WRITE_TIMEOUT_S,
            )
            return
        time.sleep(0.01)


def _iter_records(path: Path) -> Iterator[pb.Record]:
    """Decode the `Record` messages of a `.wandb` file; a truncated tail (run still writing) ends it."""
    return map(_parse, _iter_payloads(path))


def _parse(payload: bytes) -> pb.Record:
    record = pb.Record()
    record.ParseFromString(payload)
    return record


def _iter_payloads(path: Path) -> Iterator[bytes]:
    """The raw records of a `.wandb` file, reassembled from their chunks."""
    data = path.read_bytes()
    if len(data) < _FILE_HEADER.size:
        return  # wandb-core has not written anything yet
    ident, magic, _version = _FILE_HEADER.unpack_from(data)
    if ident != _FILE_IDENT or magic != _FILE_MAGIC:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, pending = _FILE_HEADER.size, None
    while True:
        if _BLOCK_SIZE - pos % _BLOCK_SIZE < _CHUNK_HEADER.size:
            pos += _BLOCK_SIZE - pos % _BLOCK_SIZE  # zero padding at the end of a block
        if pos + _CHUNK_HEADER.size > len(data):
            return
        checksum, length, chunk_type = _CHUNK_HEADER.unpack_from(data, pos)
        start = pos + _CHUNK_HEADER.size
        chunk = data[start : start + length]
        if len(chunk) < length:
            return
        if zlib.crc32(chunk, zlib.crc32(bytes([chunk_type]))) != checksum:
            raise ValueError(f"{path}: checksum mismatch at byte {pos}")
        if chunk_type in (_FULL, _FIRST):
            pending = bytearray(chunk)
        elif chunk_type in (_MIDDLE, _LAST) and pending is not None:
            pending += chunk
        else:
            raise ValueError(f"{path}: unexpected chunk type {chunk_type} at byte {pos}")
        pos = start + length
        if chunk_type in (_FULL, _LAST):
            yield bytes(pending)
            pending = None


def _apply_items(target: dict[str, Any], updates: Any, removes: Any) -> None:
    """Apply wandb config/summary/history items (JSON values under a key or a nested key path)."""
    for item in updates:
        *parents, leaf = _item_path(item)
        node = target
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = json.loads(item.value_json)
    for item in removes:
        *parents, leaf = _item_path(item)
        node = target
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)


def _item_path(item: Any) -> list[str]:
    return list(item.nested_key) or [item.key]
