"""Tests for twostream.tracking: real offline wandb runs, read back from their .wandb files."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf
from wandb.proto import wandb_internal_pb2 as pb
from wandb_offline import find_runs, read_offline_run

from twostream.tracking import start_run
from twostream.tracking.provenance import fingerprint_id, git_state


def _tracking_cfg(mode: str, root: Path) -> DictConfig:
    return OmegaConf.create({"mode": mode, "project": "twostream-test", "entity": None, "dir": str(root)})


def test_offline_run_reads_back(tmp_path: Path) -> None:
    weights = tmp_path / "weights.txt"
    weights.write_text("not really weights")
    cfg = _tracking_cfg("offline", tmp_path / "out")
    with start_run(
        cfg, stage="train_spatial", group="exp1", config={"a": 1, "nested": {"b": "x"}}
    ) as tracker:
        tracker.log({"loss": 0.5}, step=0)
        tracker.log({"loss": 0.25}, step=1)
        tracker.set_summary({"accuracy": 0.75})
        tracker.log_table("per_class", ["class", "accuracy"], [["jump", 1.0], ["run", 0.5]])
        tracker.log_artifact(weights, name="spatial-weights", type="model")

    assert tracker.run_dir is not None
    assert tracker.run_dir.parent == tmp_path / "out" / "wandb"
    run = read_offline_run(tracker.run_dir)
    assert run.config == {"a": 1, "nested": {"b": "x"}}
    assert [row["loss"] for row in run.history] == [0.5, 0.25]
    assert [row["_step"] for row in run.history] == [0, 1]
    assert run.summary["accuracy"] == 0.75
    assert run.summary["loss"] == 0.25
    assert (run.job_type, run.group, run.name) == ("train_spatial", "exp1", "exp1-train_spatial")
    assert run.artifacts == ["spatial-weights"]
    assert run.artifact_files == {"spatial-weights": ["weights.txt"]}
    assert run.exit_code == 0
    # The summary points at the table's JSON file inside the run folder.
    table_ref = run.summary["per_class"]
    assert table_ref["_type"] == "table-file"
    table = json.loads((tracker.run_dir / "files" / table_ref["path"]).read_text())
    assert table["columns"] == ["class", "accuracy"]
    assert table["data"] == [["jump", 1.0], ["run", 0.5]]


def test_records_spanning_blocks_and_run_order(tmp_path: Path) -> None:
    # A 100 kB config value makes the run record span several 32 KiB blocks (FIRST/MIDDLE/LAST chunks);
    # the many small history records also cross block boundaries.
    big = {"text": "x" * 100_000, "items": [{"i": i} for i in range(50)]}
    cfg = _tracking_cfg("offline", tmp_path)
    with start_run(cfg, stage="extract", group="exp2", config={"big": big}) as first:
        for step in range(300):
            first.log({"value": float(step)}, step=step)
    with start_run(cfg, stage="test", group="exp2", config={}) as second:
        second.set_summary({"done": True})

    run = read_offline_run(first.run_dir)
    assert run.config["big"] == big
    assert [row["value"] for row in run.history] == [float(step) for step in range(300)]
    assert read_offline_run(second.run_dir).summary["done"] is True
    assert find_runs(tmp_path) == [first.run_dir, second.run_dir]


def _history_record(key: str, value: str) -> pb.Record:
    record = pb.Record()
    item = record.history.item.add()
    item.key, item.value_json = key, json.dumps(value)
    return record


def _sized_record(key: str, size: int) -> pb.Record:
    """A history record whose serialised size is exactly `size` bytes (away from varint length edges)."""
    overhead = _history_record(key, "x" * size).ByteSize() - size  # field tags and length prefixes
    record = _history_record(key, "x" * (size - overhead))
    assert record.ByteSize() == size
    return record


def test_reader_handles_block_padding(tmp_path: Path) -> None:
    # Block tails a real run only hits by chance: 3 bytes left (zero padding), exactly 7 bytes left
    # (an empty FIRST chunk, then the rest in the next block) and 0 bytes left. The file is written
    # the way wandb-core's leveldb writer does it (core/pkg/leveldb/record.go).
    block, header = 32 * 1024, 7
    out = bytearray(b":W&B\xe1\xbe\x00")

    def append(record: pb.Record) -> None:
        rest, first = record.SerializeToString(), True
        while first or rest:
            left = block - len(out) % block
            if left < header:
                out.extend(bytes(left))
                continue
            chunk, rest = rest[: left - header], rest[left - header :]
            kind = (1 if not rest else 2) if first else (4 if not rest else 3)
            out.extend(struct.pack("<IHB", zlib.crc32(bytes([kind]) + chunk), len(chunk), kind) + chunk)
            first = False

    expected = []
    for tail in (3, 7, 0):
        left = block - len(out) % block
        # Distinct keys, so that two records wrongly glued together cannot pass as one row.
        for record in (
            _sized_record(f"fill{tail}", left - header - tail),
            _history_record(f"after{tail}", "y"),
        ):
            append(record)
            expected.append({record.history.item[0].key: json.loads(record.history.item[0].value_json)})
    (tmp_path / "run-synthetic.wandb").write_bytes(bytes(out))

    assert read_offline_run(tmp_path, wait=False).history == expected


def test_exception_finishes_run_and_reraises(tmp_path: Path) -> None:
    config = OmegaConf.create({"model": {"arch": "resnet18"}, "lr": "${optim.lr}", "optim": {"lr": 0.01}})
    with (
        pytest.raises(RuntimeError, match="boom"),
        start_run(_tracking_cfg("offline", tmp_path), stage="fuse", group="exp3", config=config) as tracker,
    ):
        tracker.log({"loss": 1.0})
        raise RuntimeError("boom")

    run = read_offline_run(tracker.run_dir)
    assert run.exit_code == 1
    assert [row["loss"] for row in run.history] == [1.0]
    # A DictConfig is stored resolved, as plain nested values.
    assert run.config == {"model": {"arch": "resnet18"}, "lr": 0.01, "optim": {"lr": 0.01}}


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    with start_run(
        _tracking_cfg("disabled", tmp_path / "out"), stage="report", group="exp4", config={"a": 1}
    ) as tracker:
        tracker.log({"loss": 0.5}, step=0)
        tracker.set_summary({"accuracy": 0.75})
        tracker.log_table("t", ["c"], [[1]])
        tracker.log_artifact(tmp_path / "missing.txt", name="nothing", type="model")
    assert tracker.run_dir is None
    assert list(tmp_path.iterdir()) == []


def test_unknown_mode_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tracking.mode"):
        start_run(_tracking_cfg("dryrun", tmp_path), stage="test", group="exp5", config={})


def test_logged_images_are_read_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), rng.integers(0, 256, (14, 6, 3), dtype=np.uint8)]
    with start_run(_tracking_cfg("offline", tmp_path), stage="extract", group="exp6", config={}) as tracker:
        tracker.log_images("flow_samples", images, ["first", "second"])
        tracker.log_images("plot", images[:1], ["alone"])
    run = read_offline_run(tracker.run_dir)
    # single wandb.Image entries (what `wandb leet`'s media pane shows; a list of images it does not),
    # each at its own size
    logged = [run.summary["flow_samples/0"], run.summary["flow_samples/1"], run.summary["plot"]]
    assert [entry["_type"] for entry in logged] == ["image-file"] * 3
    assert [entry["caption"] for entry in logged] == ["first", "second", "alone"]
    for image, entry in zip([*images, images[0]], logged, strict=True):
        assert (entry["height"], entry["width"]) == image.shape[:2]
        png = cv2.imread(str(tracker.run_dir / "files" / entry["path"]), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(png[..., ::-1], image)  # lossless PNG, OpenCV reads BGR


def test_tables_go_to_the_summary_not_the_history(tmp_path: Path) -> None:
    """`wandb leet` charts every number of a history row, so a table logged there shows as one-point
    charts of its row and column counts; in the summary it is listed, and the web UI shows it."""
    with start_run(_tracking_cfg("offline", tmp_path), stage="fuse", group="exp7", config={}) as tracker:
        tracker.log({"loss": 1.0}, step=0)
        tracker.log_table("results", ["method", "accuracy"], [["temporal", 0.5]])
    run = read_offline_run(tracker.run_dir)
    assert [set(row) - {"_step", "_runtime", "_timestamp"} for row in run.history] == [{"loss"}]
    table = json.loads((tracker.run_dir / "files" / run.summary["results"]["path"]).read_text())
    assert table["columns"] == ["method", "accuracy"] and table["data"] == [["temporal", 0.5]]


def test_wandb_prints_nothing_and_the_experiment_says_where_its_runs_are(tmp_path: Path, monkeypatch) -> None:
    from twostream.tracking import runs_note  # noqa: PLC0415

    script = tmp_path / "one_run.py"
    script.write_text("from twostream.tracking import start_run\n"
                      f"with start_run({{'mode': 'offline', 'project': 'p', 'entity': None, 'dir': {str(tmp_path)!r}}},"
                      " stage='fuse', group='g', config={}) as t:\n    t.log({'x': 1.0})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""  # wandb offline printed 3 lines per run before
    monkeypatch.chdir(tmp_path)
    note = runs_note({"mode": "offline", "dir": str(tmp_path / "outputs/x")}, 6)
    assert note == ("W&B: 6 offline run(s) in outputs/x/wandb; browse them with `wandb leet outputs/x/wandb`, "
                    "upload them with `wandb sync outputs/x/wandb/offline-run-*`")
    assert runs_note({"mode": "disabled", "dir": "x"}, 6) is None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
def test_git_state_names_the_commit_and_sees_local_changes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "code.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = (repo / ".git" / "HEAD").read_text().split()[-1]
    commit = (repo / ".git" / head).read_text().strip()
    assert git_state(repo) == {"commit": commit, "dirty": False}
    (repo / "code.py").write_text("x = 2\n")
    assert git_state(repo) == {"commit": commit, "dirty": True}
    (tmp_path / "plain").mkdir()
    assert git_state(tmp_path / "plain") == {"commit": None, "dirty": None}


def test_fingerprint_id_ignores_key_order_but_not_values() -> None:
    a = {"estimator": "dis", "params": {"preset": "fast", "finest_scale": None}, "bound": 20}
    b = {"bound": 20, "params": {"finest_scale": None, "preset": "fast"}, "estimator": "dis"}
    assert fingerprint_id(a) == fingerprint_id(b)
    assert fingerprint_id(a) != fingerprint_id(a | {"bound": 16})
