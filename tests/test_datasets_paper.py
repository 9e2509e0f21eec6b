"""The paper's experiments (conf/experiment/paper_*.yaml) and the per-split + mean table of their splits."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from twostream.compare import main as compare_main
from twostream.report import write_results
from twostream.rundir import RunDir
from twostream.scores import Scores
from twostream.train.loop import make_optimizer

CONF = Path(__file__).resolve().parents[1] / "conf"
# Training videos per split (official lists, tests/test_splits.py) and the paper's schedule.
TRAIN_VIDEOS = {"ucf101": 9537, "hmdb51": 3570}
PAPER_STEPS, PAPER_DECAYS, PAPER_BATCH = 80_000, (50_000, 70_000), 256


def paper_cfg(experiment: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=[f"+experiment={experiment}", "dataset.root=/data"])


@pytest.mark.parametrize("experiment", ["paper_ucf101", "paper_hmdb51"])
def test_paper_experiments_follow_the_papers_settings_and_schedule(experiment):
    cfg = paper_cfg(experiment)
    dataset = experiment.removeprefix("paper_")
    assert cfg.dataset.name == dataset and cfg.dataset.short_side == 256 and cfg.model.arch == "cnn_m_2048"
    assert cfg.train.crop_size == 224 and (cfg.test.num_positions, cfg.test.crops) == (25, 10)
    temporal = cfg.streams.temporal
    assert (temporal.L, temporal.stacking, temporal.mean_subtraction) == (10, "optical_flow", True)
    assert cfg.streams.spatial.dropout == temporal.dropout == 0.9
    assert cfg.train.batch_size * cfg.train.accumulate == PAPER_BATCH
    steps_per_epoch = TRAIN_VIDEOS[dataset] * cfg.train.samples_per_video / PAPER_BATCH
    for stream in (cfg.streams.spatial, temporal):
        assert stream.lr == 0.01
        assert stream.epochs * steps_per_epoch == pytest.approx(PAPER_STEPS, rel=0.01)
        # ask the optimiser the lr of every epoch: it is divided by 10 after 50K and 70K steps
        optimizer, scheduler = make_optimizer(torch.nn.Linear(1, 1), cfg.train, stream.lr, stream.epochs)
        rates = []
        for _ in range(stream.epochs):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        decays = [epoch * steps_per_epoch for epoch in range(1, stream.epochs) if rates[epoch] < rates[epoch - 1]]
        assert decays == pytest.approx(PAPER_DECAYS, rel=0.02), f"lr decayed after steps {decays}"
        assert rates[-1] == pytest.approx(stream.lr / 100)


def make_split_run(folder: Path, split: int, accuracy: dict[str, float]) -> None:
    """A run folder as a multirun job leaves it: results.json, test score files, .hydra/config.yaml."""
    classes = np.array(["a", "b"])
    labels = np.array([0, 1, 0, 1])
    for method, value in accuracy.items():
        hits = round(value * len(labels))
        predicted = np.where(np.arange(len(labels)) < hits, labels, 1 - labels)
        Scores(np.array([f"v{i}" for i in range(4)]), labels, np.eye(2, dtype=np.float32)[predicted],
               classes).save(RunDir(folder).scores(method, "test"))
    write_results({"experiment": "paper_ucf101", "dataset": "ucf101", "split": split, "num_classes": 2,
                   "num_test_videos": 4, "chance": 0.5, "svm_C": 1.0, "accuracy": accuracy}, RunDir(folder))
    (folder / ".hydra").mkdir()
    OmegaConf.save({"name": "paper_ucf101", "dataset": {"name": "ucf101", "split": split}},
                   folder / ".hydra/config.yaml")


def test_compare_mean_gives_per_split_rows_and_their_mean_with_an_interval(tmp_path, capsys):
    accuracy = {1: {"spatial": 0.5, "temporal": 0.75, "fusion_svm": 1.0},
                2: {"spatial": 0.25, "temporal": 0.75, "fusion_svm": 0.75},
                3: {"spatial": 0.75, "temporal": 0.5, "fusion_svm": 1.0}}
    multirun = tmp_path / "multirun/paper_ucf101"
    for job, split in enumerate(accuracy):
        make_split_run(multirun / str(job), split, accuracy[split])
    compare_main([*(str(multirun / str(job)) for job in range(3)), "--mean", "--out", str(tmp_path / "table"),
                  "--tracking-mode", "disabled"])
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0] == ["run", "split", "spatial", "temporal", "fusion_svm"]
    table = {row[1]: row[2:] for row in rows[1:4]}
    for split, values in accuracy.items():
        assert table[str(split)] == [f"{values[m]:.1%}" for m in ("spatial", "temporal", "fusion_svm")]
    assert rows[4] == ["runs", "n", "spatial", "temporal", "fusion_svm"]
    # mean ± t(0.975, 2 degrees of freedom) = 4.303 x sd / sqrt(3), and the sample sd, in points
    expected = []
    for method in ("spatial", "temporal", "fusion_svm"):
        values = [accuracy[s][method] for s in accuracy]
        sd = np.std(values, ddof=1)
        expected.append(f"{np.mean(values):.1%} ± {100 * 4.3027 * sd / np.sqrt(3):.1f} (sd {100 * sd:.1f})")
    assert rows[5] == ["all", "3", *expected]
    assert (tmp_path / "table/accuracy_mean.png").is_file()
