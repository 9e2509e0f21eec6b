"""The paper studies (conf/experiment/paper_table*.yaml, paper_flow.yaml): each job of each table's
multirun composes to the cell it names and passes the checks before any work, and each table's
multirun runs end to end at a tiny size, its cells doing what their files say."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import twostream
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from twostream.checks import check_config, check_environment
from twostream.compare import main as compare_main
from twostream.errors import ConfigError
from twostream.rundir import RunDir
from twostream.scores import Scores

REPO = Path(__file__).resolve().parents[1]
TABLES = ["paper_table1", "paper_table2", "paper_table3", "paper_table4", "paper_flow"]
# What each of paper_table2's cells sets: (L, stacking, bidirectional, mean subtraction, camera pan).
TABLE2_CELLS = {
    "l1": (1, "optical_flow", False, True, 1.0), "l5": (5, "optical_flow", False, True, 1.0),
    "l10": (10, "optical_flow", False, True, 1.0), "l10_no_mean": (10, "optical_flow", False, False, 1.0),
    "trajectory": (10, "trajectory", False, True, 1.0), "bidirectional": (10, "optical_flow", True, True, 1.0),
    "no_pan": (10, "optical_flow", False, True, 0.0), "no_pan_no_mean": (10, "optical_flow", False, False, 0.0),
}
# Small enough for a few seconds a job; the flow stack of L=10 still fits in the clips.
TINY_SYNTHETIC = {"groups_per_class": 3, "clips_per_group": 1, "test_groups": 1, "num_frames": 12}
TINY_TRAIN = ["train.samples_per_video=1", "test.num_positions=2", "test.crops=1", "tracking.mode=disabled",
              "seed=0"]  # on the command line a value replaces the sweeper's list


def compose_job(overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return compose(config_name="config", overrides=[*overrides, "paths.output_dir=."], return_hydra_config=True)


def sweep_jobs(experiment: str) -> list[list[str]]:
    """The overrides of every job the table's multirun launches (its sweeper params' grid)."""
    params = compose_job([f"+experiment={experiment}"]).hydra.sweeper.params
    keys = list(params)
    return [[f"+experiment={experiment}", *(f"{k}={v}" for k, v in zip(keys, values, strict=True))]
            for values in itertools.product(*(str(params[k]).split(",") for k in keys))]


def generator_overrides(prefix: str) -> list[str]:
    return [f"{prefix}.generator.{k}={v}" for k, v in TINY_SYNTHETIC.items()]


@pytest.mark.slow  # composes and checks every job of every table: ~30 s in all on 2 cores
@pytest.mark.parametrize("experiment", TABLES)
def test_every_job_of_a_table_is_seeded_at_least_three_times_and_passes_the_checks(experiment, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)  # where no pre-training run has left its checkpoint
    jobs = sweep_jobs(experiment)
    seeds = {job[-1] for job in jobs if job[-1].startswith("seed=")}
    assert {"seed=0", "seed=1", "seed=2"} <= seeds, "every cell needs at least 3 seeds"
    for job in jobs:
        cfg = compose_job(job)
        OmegaConf.resolve(cfg.dataset)
        check_config(cfg)
        if cfg.model.pretrained is None:
            check_environment(cfg)
        else:  # the pre-trained rows need the pre-training run's checkpoint: refused before work
            with pytest.raises(ConfigError, match="paper_table1_pretrain/checkpoints/spatial.pt"):
                check_environment(cfg)


def test_table2_cells_set_what_their_names_say():
    jobs = [job for job in sweep_jobs("paper_table2") if job[-1] == "seed=0"]
    assert {job[1].split("=")[1] for job in jobs} == set(TABLE2_CELLS)
    for job in jobs:
        cfg = compose_job(job)
        temporal = cfg.streams.temporal
        settings = (temporal.L, temporal.stacking, temporal.bidirectional, temporal.mean_subtraction,
                    cfg.dataset.generator.camera_pan)
        assert settings == TABLE2_CELLS[job[1].split("=")[1]], job
        assert list(cfg.streams) == ["temporal"] and cfg.cache.backward
        # the panning and the still draws are other videos: other folders and caches
        assert cfg.dataset.variant.endswith("_nopan") == (cfg.dataset.generator.camera_pan == 0)


def run_table(cwd: Path, *args: str) -> None:
    result = twostream("-m", *args, *TINY_TRAIN, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]


def run_dirs(cwd: Path, name: str) -> list[Path]:
    return sorted((cwd / "multirun" / name).glob("[0-9]*"), key=lambda p: int(p.name))


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def job_cell(run: Path) -> str:
    return next(o for o in OmegaConf.load(run / ".hydra/overrides.yaml") if o.startswith("+paper/")).split("=")[1]


def summary_rows(runs: list[Path], out: Path) -> list[str]:
    """The --mean summary of twostream.compare over the runs: one row per cell."""
    compare_main([*map(str, runs), "--mean", "--out", str(out), "--tracking-mode", "disabled"])
    text = (out / "comparison.md").read_text()
    summary = text.split("## Mean over")[1].split("## Per-class")[0]
    return [line for line in summary.splitlines() if line.startswith("|") and "---" not in line][1:]


@pytest.mark.slow
def test_table2_runs_every_cell_at_a_tiny_size(tmp_path):
    run_table(tmp_path, "+experiment=paper_table2", *generator_overrides("dataset"), "streams.temporal.epochs=1")
    runs = run_dirs(tmp_path, "paper_table2")
    assert [job_cell(r) for r in runs] == list(TABLE2_CELLS)
    for run in runs:
        assert set(results(run)["accuracy"]) == {"temporal"}
        pan = OmegaConf.load(run / ".hydra/config.yaml").dataset.root
        generated = json.loads((tmp_path / pan / "generator.json").read_text())
        assert generated["camera_pan"] == TABLE2_CELLS[job_cell(run)][4]
    assert len(summary_rows(runs, tmp_path / "table")) == len(TABLE2_CELLS)


@pytest.mark.slow
def test_table1_pretrains_then_fine_tunes_or_trains_the_last_layer_at_a_tiny_size(tmp_path):
    tiny = [*generator_overrides("dataset"), "streams.spatial.epochs=1", "tracking.mode=disabled"]
    result = twostream("+experiment=paper_table1_pretrain", *tiny, *TINY_TRAIN[:3], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    pretrained = torch.load(tmp_path / "outputs/paper_table1_pretrain/checkpoints/spatial.pt", weights_only=False)
    run_table(tmp_path, "+experiment=paper_table1", *tiny)
    runs = run_dirs(tmp_path, "paper_table1")
    assert sorted((job_cell(r), OmegaConf.load(r / ".hydra/config.yaml").streams.spatial.dropout) for r in runs) == \
        sorted(itertools.product(["scratch", "finetune", "last"], [0.5, 0.9]))
    for run in runs:
        trunk = {k: v for k, v in torch.load(run / "checkpoints/spatial.pt", weights_only=False)["model"].items()
                 if k.startswith("trunk.")}
        same = all(torch.equal(v, pretrained["model"][k]) for k, v in trunk.items())
        # only the last-layer rows keep the pre-trained trunk; the others trained theirs
        assert same == (job_cell(run) == "last"), run
    assert len(summary_rows(runs, tmp_path / "table")) == 6


@pytest.mark.slow
def test_table3_trains_alone_with_a_second_task_and_merged_at_a_tiny_size(tmp_path):
    run_table(tmp_path, "+experiment=paper_table3", "+paper/table3=alone",
              *generator_overrides("dataset"), "streams.temporal.epochs=1", "name=alone")
    # the tasks' keys exist once the dataset is the multi-task one (Hydra checks overrides before the cell applies)
    run_table(tmp_path, "+experiment=paper_table3", "+paper/table3=multitask,merged", "dataset=synthetic_multitask",
              *generator_overrides("dataset.tasks.target"), *generator_overrides("dataset.tasks.extra"),
              "streams.temporal.epochs=1", "name=with_extra")
    alone, multitask, merged = (*run_dirs(tmp_path, "alone"), *run_dirs(tmp_path, "with_extra"))
    assert (job_cell(alone), job_cell(multitask), job_cell(merged)) == ("alone", "multitask", "merged")
    # the same test videos of the target set, scored over its 12 classes in every row: the merged
    # head knows the extra set's 12 classes too, but they are never a target video's answer
    assert results(alone)["num_classes"] == results(multitask)["num_classes"] == results(merged)["num_classes"] == 12
    assert results(alone)["num_test_videos"] == results(multitask)["num_test_videos"] == \
        results(merged)["num_test_videos"]
    merged_heads = [v.shape[0] for k, v in torch.load(merged / "checkpoints/temporal.pt", weights_only=False)["model"].items()
                    if k.startswith("heads.") and k.endswith("weight")]
    assert merged_heads == [24]
    for subset in ("train", "val", "test"):
        scores = Scores.load(RunDir(merged).scores("temporal", subset))
        assert list(scores.classes) == results(alone)["classes"] and scores.scores.shape[1] == 12
        assert np.allclose(scores.scores.sum(1), 1, atol=1e-5) and scores.labels.max() < 12
    assert len(Scores.load(RunDir(merged).scores("temporal", "train")).labels) == \
        len(Scores.load(RunDir(alone).scores("temporal", "train")).labels)
    heads = [v.shape for k, v in torch.load(multitask / "checkpoints/temporal.pt", weights_only=False)["model"].items()
             if k.startswith("heads.") and k.endswith("weight")]
    assert [h[0] for h in heads] == [12, 12]  # one head per dataset


@pytest.mark.slow
def test_table4_and_the_flow_study_run_at_a_tiny_size(tmp_path):
    epochs = ["streams.spatial.epochs=1", "streams.temporal.epochs=1", "streams.temporal.L=5"]
    run_table(tmp_path, "+experiment=paper_table4", *generator_overrides("dataset"), *epochs)
    (table4,) = run_dirs(tmp_path, "paper_table4")
    assert set(results(table4)["accuracy"]) == {"spatial", "temporal", "fusion_average", "fusion_svm"}
    # the OpenCV estimators here; tvl1's extraction has its own tests (its compilation takes a minute)
    run_table(tmp_path, "+experiment=paper_flow", "flow=farneback,dis",
              *generator_overrides("dataset"), "streams.temporal.epochs=1")
    runs = run_dirs(tmp_path, "paper_flow")
    caches = {OmegaConf.load(r / ".hydra/config.yaml").flow.name: r for r in runs}
    assert set(caches) == {"farneback", "dis"}
    assert all(list((tmp_path / "data/cache").glob(f"*_{name}.zarr")) for name in caches)
