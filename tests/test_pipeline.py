"""End to end through the real command line: a tiny synthetic experiment, its files and W&B runs."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, assert_results_match_score_files, twostream
from omegaconf import OmegaConf
from wandb_offline import find_runs, read_offline_run

# every test here runs the pipeline end to end (85 s of the suite on 2 cores): the whole suite only
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("run")
    result = twostream(*TINY, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


def test_results_table_is_written_and_printed(tiny_run):
    cwd, result = tiny_run
    results = json.loads((cwd / "outputs/tiny/results.json").read_text())
    assert set(results["accuracy"]) == {"spatial", "temporal", "fusion_average", "fusion_svm"}
    assert_results_match_score_files(cwd / "outputs/tiny")
    assert results["num_classes"] == 12 and results["num_test_videos"] == 12
    assert results["chance"] == pytest.approx(1 / 12)
    assert "| fusion_svm |" in result.stdout and "| chance (1/C) | 8.3% | 8.3% | 41.7% | 8.3% |" in result.stdout
    assert (cwd / "outputs/tiny/results.md").read_text().count("|") > 10


def test_score_files_follow_the_documented_format(tiny_run):
    cwd, _ = tiny_run
    split_lines = (cwd / "data/synthetic/s0_64x64_f16_g3x1/splits/testlist01.txt").read_text().split()
    ids = {}
    for stream in ("spatial", "temporal"):
        for subset in ("train", "test"):
            with np.load(cwd / f"outputs/tiny/scores/{stream}_{subset}.npz") as f:
                assert f["scores"].shape == (len(f["video_ids"]), 12)
                np.testing.assert_allclose(f["scores"].sum(1), 1, atol=1e-5)  # softmax rows
                assert len(f["classes"]) == 12 and f["labels"].dtype == np.int64
                ids[stream, subset] = list(f["video_ids"])
    assert ids["spatial", "test"] == ids["temporal", "test"] == [p.removesuffix(".avi") for p in split_lines]
    assert ids["spatial", "train"] == ids["temporal", "train"]


def test_every_stage_is_an_offline_wandb_run_holding_its_metrics(tiny_run):
    cwd, _ = tiny_run
    runs = [read_offline_run(p) for p in find_runs(cwd / "outputs/tiny/wandb")]
    assert [r.job_type for r in runs] == ["extract", "train_spatial", "train_temporal", "test_spatial",
                                          "test_temporal", "fuse"]
    assert {r.group for r in runs} == {"tiny"}
    results = json.loads((cwd / "outputs/tiny/results.json").read_text())
    fuse = runs[-1]
    for method, value in results["accuracy"].items():
        assert fuse.summary[f"accuracy/{method}"] == pytest.approx(value)
    assert fuse.config["streams"]["temporal"]["L"] == 5  # the whole resolved config
    train_temporal = runs[2]
    assert [h["epoch"] for h in train_temporal.history if "epoch" in h] == [1, 2]
    assert runs[0].summary["videos_extracted"] == 36
    assert [runs[0].summary[f"flow_samples/{i}"]["_type"] for i in range(4)] == ["image-file"] * 4
    # what each stage leaves behind, logged by the stage to its own run
    assert [r.artifact_files for r in runs[1:]] == [
        {"tiny-spatial-checkpoint": ["spatial.pt"]}, {"tiny-temporal-checkpoint": ["temporal.pt"]},
        {"tiny-spatial-scores": ["spatial_test.npz", "spatial_train.npz"]},
        {"tiny-temporal-scores": ["temporal_test.npz", "temporal_train.npz"]},
        {"tiny-results": ["results.json", "results.md"],
         "tiny-fusion": ["fusion_average_test.npz", "fusion_svm_test.npz", "svm.pkl"]}]


def test_wandb_says_where_the_runs_are_in_one_line(tiny_run):
    _, result = tiny_run
    output = result.stdout + result.stderr
    assert "wandb:" not in output  # wandb's own three lines per run
    [note] = [line for line in output.splitlines() if "W&B" in line]
    assert note.endswith("W&B: 6 offline run(s) in outputs/tiny/wandb; browse them with `wandb leet outputs/tiny/wandb`, "
                         "upload them with `wandb sync outputs/tiny/wandb/offline-run-*`")


def test_one_stage_alone_reuses_earlier_outputs(tiny_run):
    cwd, _ = tiny_run
    before = json.loads((cwd / "outputs/tiny/results.json").read_text())
    (cwd / "outputs/tiny/results.json").unlink()
    again = twostream(*TINY, "stage=fuse", "tracking.mode=disabled", cwd=cwd)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((cwd / "outputs/tiny/results.json").read_text()) == before
    extract = twostream(*TINY, "stage=extract", "tracking.mode=disabled", cwd=cwd)
    assert extract.returncode == 0, extract.stderr[-3000:]
    assert "0 extracted, 36 already cached" in extract.stdout + extract.stderr


def test_the_same_command_under_torchrun_trains_on_two_processes(tmp_path):
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node=2")
    result = twostream(*TINY, "name=ddp", cwd=tmp_path, launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_results_match_score_files(tmp_path / "outputs/ddp")
    # only the main process logs: one W&B run per stage, not two
    runs = [read_offline_run(p) for p in find_runs(tmp_path / "outputs/ddp/wandb")]
    assert [r.job_type for r in runs].count("train_temporal") == 1 and len(runs) == 6
    # only the main process reports epochs (the other trains silently)
    log = (tmp_path / "outputs/ddp/__main__.log").read_text()
    assert "temporal epoch 2:" in log and log.count("temporal epoch 2:") == 1


def test_a_runtime_setting_changed_resumes_and_tests_the_same_checkpoint(tiny_run):
    cwd, _ = tiny_run
    runtime = ["train.runtime.amp=false", "train.runtime.channels_last=false", "train.runtime.validate=false",
               "tracking.mode=disabled"]
    train = twostream(*TINY, "stage=train", *runtime, cwd=cwd)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "temporal.pt from epoch 2" in train.stdout + train.stderr  # resumed, nothing retrained
    test = twostream(*TINY, "stage=test", *runtime, cwd=cwd)
    assert test.returncode == 0, test.stderr[-3000:]
    # what the weights depend on is still checked
    refused = twostream(*TINY, "stage=test", "train.lr_gamma=0.5", "tracking.mode=disabled", cwd=cwd)
    assert refused.returncode != 0 and "train.lr_gamma: checkpoint has 0.1, config asks for 0.5" in refused.stderr


def test_videos_too_short_for_the_flow_stack_are_left_out_once_and_the_run_goes_on(tmp_path, textured_image):
    import cv2  # noqa: PLC0415  (only this test writes videos)

    root = tmp_path / "videos"
    # (with the seeded split, Jump/b is a training video, and each class keeps videos in every set)
    lengths = {"Jump/a": 12, "Jump/b": 4, "Jump/c": 12, "Jump/d": 12, "Run/a": 12, "Run/b": 12, "Run/c": 12,
               "Run/d": 12}
    for video, length in lengths.items():
        (root / video).parent.mkdir(parents=True, exist_ok=True)
        speed = 1 if video.startswith("Jump") else 3
        writer = cv2.VideoWriter(str(root / f"{video}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 96))
        for k in range(length):
            writer.write(np.roll(textured_image, speed * k, axis=1))
        writer.release()
    (root / "Run/bad.avi").write_bytes(b"not a video")  # unreadable: named once, when extraction fails
    result = twostream("+experiment=quickstart", "dataset=folder", f"dataset.root={root}", "dataset.name=short",
                       "name=short", "progress=false", "tracking.mode=disabled", "streams.temporal.L=5",
                       "streams.spatial.epochs=1", "streams.temporal.epochs=1", "test.num_positions=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "outputs/short/__main__.log").read_text()
    assert log.count("left out of training and testing") == 1  # said once, not by every stage
    assert log.count("Run/bad") == 1 and "the 1 that failed extraction above" in log
    listed = (tmp_path / "outputs/short/left_out_videos.txt").read_text().splitlines()
    assert listed[0] == "Jump/b: 4 frames, fewer than the 6 a flow stack of this run needs"
    assert listed[1].startswith("Run/bad: extraction failed") and len(listed) == 2
    for stream in ("spatial", "temporal"):
        ids = [str(v) for s in ("train", "val", "test")
               for v in np.load(tmp_path / f"outputs/short/scores/{stream}_{s}.npz")["video_ids"]]
        assert sorted(ids) == sorted(set(lengths) - {"Jump/b"})


@pytest.mark.slow
def test_keep_best_val_tests_each_stream_with_its_epoch_best_on_validation(tmp_path):
    import torch  # noqa: PLC0415

    from twostream.cache import cache_fingerprint  # noqa: PLC0415
    from twostream.rundir import RunDir  # noqa: PLC0415
    from twostream.train.stage import trained_state  # noqa: PLC0415

    result = twostream(*TINY, "streams.spatial.epochs=4", "streams.temporal.epochs=4", "train.keep=best_val",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output_dir = tmp_path / "outputs/tiny"
    runs = {r.job_type: r for r in map(read_offline_run, find_runs(output_dir / "wandb"))}
    cfg = OmegaConf.load(output_dir / ".hydra/config.yaml")
    cfg.paths.output_dir = str(output_dir)
    for stream in ("spatial", "temporal"):
        history = [row["val/accuracy"] for row in runs[f"train_{stream}"].history if "val/accuracy" in row]
        best = int(np.argmax(history)) + 1  # the first of equal maxima
        assert len(history) == 4 and runs[f"test_{stream}"].summary["kept_epoch"] == best
        assert runs[f"test_{stream}"].summary["train_keep"] == "best_val"
        state = torch.load(output_dir / f"checkpoints/{stream}.pt", weights_only=False)
        assert state["best"]["epoch"] == best and state["best"]["val_accuracy"] == pytest.approx(max(history))
        assert state["settings"]["train"]["keep"] == "best_val"  # part of what the weights depend on
        # what the test stage (and predict) load
        kept = trained_state(cfg, stream, RunDir(output_dir), cache_fingerprint(cfg))["model"]
        assert all(torch.equal(kept[k], state["best"]["model"][k]) for k in kept)
        if best < 4:  # then the last epoch's weights are others
            assert any(not torch.equal(kept[k], state["model"][k]) for k in kept)
    results = json.loads((output_dir / "results.json").read_text())
    assert results["train_keep"] == "best_val"
    assert "(train.keep=best_val)" in (output_dir / "results.md").read_text()
