"""End to end through the real command line: a tiny synthetic experiment, its files and W&B runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from sklearn.svm import LinearSVC
from wandb_offline import find_runs, read_offline_run

REPO = Path(__file__).resolve().parents[1]

TINY = [
    "+experiment=quickstart", "name=tiny", "progress=false",
    "dataset.generator.groups_per_class=3", "dataset.generator.clips_per_group=1",
    "dataset.generator.test_groups=1", "dataset.generator.num_frames=16",
    "streams.spatial.epochs=2", "streams.temporal.epochs=2", "streams.temporal.L=5",
    "train.samples_per_video=2", "test.num_positions=3",
]


def twostream(*args: str, cwd: Path, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``python [-m LAUNCHER] -m twostream ARGS`` as a user would, from ``cwd``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, *launcher, "-m", "twostream", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_results_match_score_files(output_dir: Path) -> None:
    """results.json's accuracies, recomputed from the score files the test and fuse stages wrote.

    Each method's accuracy is the argmax of its test score file against the labels; the average
    fusion's file holds the mean of the streams' files, and the SVM fusion's the decisions of a
    Crammer-Singer LinearSVC fitted here on the L2-normalised score files of the videos the fuse
    stage fitted it on (results.json's svm_fit_on) with the C it chose.
    """
    results = json.loads((output_dir / "results.json").read_text())
    cfg = OmegaConf.load(output_dir / ".hydra/config.yaml")
    streams = list(cfg.streams)

    def scores(name: str, subset: str = "test") -> np.ndarray:
        with np.load(output_dir / f"scores/{name}_{subset}.npz") as f:
            return f["scores"]

    def features(subset: str) -> np.ndarray:
        # each stream's scores L2-normalised, side by side; in float32 as stored, since the
        # near-uniform scores of a barely trained net leave the SVM close to ties
        per_stream = [scores(s, subset) for s in streams]
        return np.hstack([s / np.linalg.norm(s, axis=1, keepdims=True) for s in per_stream])

    with np.load(output_dir / f"scores/{streams[0]}_test.npz") as f:
        labels = f["labels"]
    with np.load(output_dir / f"scores/{streams[0]}_{results['svm_fit_on'] or 'train'}.npz") as f:
        fit_labels = f["labels"]  # of the videos the SVM was fitted on
    if len(streams) == 1:  # a single stream is not fused: its own accuracy is all there is
        assert results["accuracy"] == pytest.approx({streams[0]: float((scores(streams[0]).argmax(1) == labels).mean())})
        assert results["svm_C"] is None and not (output_dir / "scores/fusion_average_test.npz").exists()
        return
    np.testing.assert_allclose(scores("fusion_average"), np.mean([scores(s) for s in streams], axis=0), rtol=1e-6,
                               err_msg="the average fusion's scores are not the mean of the streams' scores")
    svm = LinearSVC(multi_class="crammer_singer", C=results["svm_C"], tol=cfg.fusion.svm.tol, max_iter=cfg.fusion.svm.max_iter,
                    random_state=cfg.seed).fit(features(results["svm_fit_on"]), fit_labels)
    decision = svm.decision_function(features("test"))
    if decision.ndim == 1:  # two classes: scikit-learn gives class 1's margin only
        decision = np.stack([-decision, decision], axis=1)
    np.testing.assert_allclose(scores("fusion_svm"), decision, rtol=1e-5, atol=1e-6,
                               err_msg="the SVM fusion's scores are not the refitted SVM's decisions")
    expected = {m: float((scores(m).argmax(1) == labels).mean()) for m in [*streams, "fusion_average", "fusion_svm"]}
    assert results["accuracy"] == pytest.approx(expected), "results.json disagrees with the score files"


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
    assert "| fusion_svm |" in result.stdout and "| chance | 8.3% |" in result.stdout
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
    lengths = {"Jump/a": 12, "Jump/b": 12, "Jump/c": 4, "Run/a": 12, "Run/b": 12, "Run/c": 12}
    for video, length in lengths.items():
        (root / video).parent.mkdir(parents=True, exist_ok=True)
        speed = 1 if video.startswith("Jump") else 3
        writer = cv2.VideoWriter(str(root / f"{video}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 96))
        for k in range(length):
            writer.write(np.roll(textured_image, speed * k, axis=1))
        writer.release()
    result = twostream("+experiment=quickstart", "dataset=folder", f"dataset.root={root}", "dataset.name=short",
                       "name=short", "progress=false", "tracking.mode=disabled", "streams.temporal.L=5",
                       "streams.spatial.epochs=1", "streams.temporal.epochs=1", "test.num_positions=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "outputs/short/__main__.log").read_text()
    assert log.count("left out of training and testing") == 1  # said once, not by every stage
    listed = (tmp_path / "outputs/short/left_out_videos.txt").read_text()
    assert listed == "Jump/c: 4 frames, fewer than the 6 a flow stack of this run needs\n"
    for stream in ("spatial", "temporal"):
        ids = [str(v) for s in ("train", "val", "test")
               for v in np.load(tmp_path / f"outputs/short/scores/{stream}_{s}.npz")["video_ids"]]
        assert sorted(ids) == sorted(set(lengths) - {"Jump/c"})
