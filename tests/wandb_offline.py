"""Reading offline W&B runs back, for the tests: config, history, summary, artefacts of a run.

An offline run has no ``wandb-summary.json``: its config, history and summary exist only as
protobuf ``Record`` messages in the ``.wandb`` file. wandb 0.31 ships no Python reader for that
file (the Go ``wandb-core`` writes it), so :func:`read_offline_run` decodes its block format
itself. It lives with the tests, not in the package: no stage reads runs back, and a change of
the format in a wandb release must not break a run (``wandb sync`` and ``wandb leet`` read it too).
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

# .wandb file layout (LevelDB log format as written by wandb-core): a 7-byte file header
# (ident ":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of records, each with a 7-byte header
# (CRC-32 of type byte + data, data length, type). A record that does not fit in the rest of a
# block is split into FIRST/MIDDLE/LAST chunks; a block tail shorter than a header is zero padding.
_FILE_HEADER = struct.Struct("<4sHB")
_FILE_IDENT, _FILE_MAGIC = b":W&B", 0xBEE1
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK_SIZE = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
# wandb-core completes a run's file in the background after run.finish() returns: how long to wait.
WRITE_TIMEOUT_S = 30.0


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


def read_offline_run(run_dir: str | Path, wait: bool = True) -> OfflineRun:
    """Read an offline run's `.wandb` file; `run_dir` is the `offline-run-*` folder.

    With ``wait``, first wait (up to ``WRITE_TIMEOUT_S``) for the run's exit record: wandb-core keeps
    the log's unfinished 32 KiB block in memory until it closes the run's stream, which happens
    after run.finish() returns (right after it, the file lacked its last records in about one run
    in five here). For a run that is still going, or was killed, only whole blocks are on disk, so
    its latest records are missing.
    """
    if wait:
        _wait_for_exit_record(_wandb_file(run_dir))
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
    """Wait until the exit record, which wandb-core writes last, is in the `.wandb` file."""
    deadline = time.monotonic() + WRITE_TIMEOUT_S
    while time.monotonic() < deadline:
        last = deque(_iter_payloads(path), maxlen=1)
        if last and _parse(last[0]).HasField("exit"):
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
