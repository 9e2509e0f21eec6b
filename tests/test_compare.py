"""`python -m twostream.compare`: tables and plots from run folders or a study, checked against the files."""

import json
from pathlib import Path

import cv2
import numpy as np
import optuna
import pytest
from omegaconf import OmegaConf
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from sklearn.metrics import confusion_matrix
from wandb_offline import find_runs, read_offline_run

from twostream.compare import main
from twostream.report import write_results
from twostream.rundir import RunDir
from twostream.scores import Scores

CLASSES = [f"class{k}" for k in range(6)]
METHODS = ("temporal", "fusion_average", "fusion_svm")


def make_run(folder: Path, L: int, dropout: float, quality: float, seed: int) -> dict:
    """A run folder as the pipeline leaves it: score files, results.json and .hydra/config.yaml."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), 4)
    ids = np.array([f"v{i}" for i in range(len(labels))])
    accuracy, per_class = {}, {}
    for method in METHODS:
        scores = (quality * np.eye(len(CLASSES))[labels] + rng.random((len(labels), len(CLASSES)))).astype(np.float32)
        Scores(ids, labels, scores, np.array(CLASSES)).save(RunDir(folder).scores(method, "test"))
        accuracy[method] = float((scores.argmax(1) == labels).mean())
        matrix = confusion_matrix(labels, scores.argmax(1))
        per_class[method] = np.diag(matrix) / matrix.sum(1)
    write_results({"experiment": folder.name, "dataset": "synthetic", "split": 1, "num_classes": len(CLASSES),
                   "num_test_videos": len(labels), "chance": 1 / len(CLASSES), "svm_C": 1.0,
                   "accuracy": accuracy}, RunDir(folder))
    (folder / ".hydra").mkdir()
    OmegaConf.save({"name": folder.name, "seed": 0, "paths": {"output_dir": str(folder)},
                    "streams": {"temporal": {"L": L, "dropout": dropout, "stacking": "optical_flow"}}},
                   folder / ".hydra/config.yaml")
    return {"accuracy": accuracy, "per_class": per_class}


@pytest.fixture
def runs(tmp_path):
    settings = [("a", 5, 0.5, 0.9, 0), ("b", 10, 0.5, 1.4, 1), ("c", 10, 0.9, 0.3, 2)]
    return {name: (tmp_path / name, make_run(tmp_path / name, L, d, q, s)) for name, L, d, q, s in settings}


def pct(value: float) -> str:
    return f"{value:.1%}"


def test_run_folders_compare_by_their_differing_settings(runs, tmp_path):
    out = tmp_path / "cmp"
    main([str(folder) for folder, _ in runs.values()] + ["--out", str(out), "--tracking-mode", "offline"])
    markdown = (out / "comparison.md").read_text()
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0]]
    # Only L and dropout differ; names and paths differ too but do not make a different experiment.
    assert header == ["run", "L", "dropout", *METHODS]
    body = [[c.strip() for c in row] for row in rows[2:5]]
    expected_settings = {"a": ["5", "0.5"], "b": ["10", "0.5"], "c": ["10", "0.9"]}
    for row, (name, (_, made)) in zip(body, runs.items(), strict=True):
        assert row == [name, *expected_settings[name], *(pct(made["accuracy"][m]) for m in METHODS)]
    # The per-class table is fusion_svm's (the last method every run has), one column per run.
    per_class = [[c.strip() for c in line.strip("|").split("|")] for line in
                 markdown.split("## Per-class accuracy: fusion_svm")[1].splitlines() if line.startswith("|")]
    assert per_class[0] == ["class", "L=5, dropout=0.5", "L=10, dropout=0.5", "L=10, dropout=0.9"]
    for i, row in enumerate(per_class[2:]):
        assert row == [CLASSES[i], *(pct(made["per_class"]["fusion_svm"][i]) for _, made in runs.values())]
    for name in ("accuracy", "per_class", "fusion_vs_streams"):
        image = cv2.imread(str(out / f"{name}.png"))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 200
        assert f"![{name}]({name}.png)" in markdown

    # The same numbers in the W&B run.
    [run_dir] = find_runs(out / "wandb")
    run = read_offline_run(run_dir)
    assert run.job_type == "compare" and run.group == "comparison"
    logged = json.loads((run_dir / "files" / run.summary["comparison"]["path"]).read_text())
    assert logged["columns"] == header
    for row, (name, (_, made)) in zip(logged["data"], runs.items(), strict=True):
        assert row[0] == name and row[3:] == pytest.approx([made["accuracy"][m] for m in METHODS])
    assert {k for k in run.summary if k.startswith("plots/")} == {"plots/accuracy", "plots/per_class",
                                                                  "plots/fusion_vs_streams"}
    assert sorted(run.artifact_files["comparison-comparison"]) == [
        "accuracy.png", "comparison.md", "fusion_vs_streams.png", "per_class.png"]


def test_a_study_is_compared_trial_by_trial_best_first(runs, tmp_path):
    journal = tmp_path / "study.journal"
    study = optuna.create_study(study_name="sweep", direction="maximize",
                                storage=JournalStorage(JournalFileBackend(str(journal))))
    study.set_user_attr("objective", "val_accuracy.temporal")
    # One trial per run folder; the table's settings are the trial's parameters, not the folder's config.
    for folder, made in runs.values():
        trial = study.ask({"streams.temporal.L": optuna.distributions.CategoricalDistribution([5, 10]),
                           "streams.temporal.dropout": optuna.distributions.CategoricalDistribution([0.5, 0.9])})
        trial.set_user_attr("output_dir", str(folder))
        study.tell(trial, 1 - made["accuracy"]["temporal"] / 2)  # a validation accuracy, ranked otherwise than test
    pruned = study.ask({"streams.temporal.L": optuna.distributions.CategoricalDistribution([5, 10])})
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    out = tmp_path / "study_cmp"
    main(["--study", str(journal), "--out", str(out), "--tracking-mode", "disabled"])
    markdown = (out / "comparison.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("|")]
    assert rows[0] == ["trial", "val_accuracy.temporal", "L", "dropout", *METHODS]
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best_first = sorted(completed, key=lambda t: -t.value)
    assert [int(r[0]) for r in rows[2:5]] == [t.number for t in best_first]
    for row, trial in zip(rows[2:5], best_first, strict=True):
        assert row[1] == pct(trial.value)  # the objective (validation) beside the test accuracies
        assert row[4] == pct(runs[next(n for n, (f, _) in runs.items() if str(f) == trial.user_attrs["output_dir"])]
                             [1]["accuracy"]["temporal"])
        assert row[2:4] == [str(trial.params["streams.temporal.L"]), str(trial.params["streams.temporal.dropout"])]
    assert f"#{pruned.number} pruned (L={pruned.params['streams.temporal.L']})" in markdown
    assert "## Per-class accuracy: temporal" in markdown  # the objective's method
    assert not (out / "wandb").exists()


def test_bad_inputs_are_named(tmp_path, runs):
    with pytest.raises(FileNotFoundError, match="nothing/results.json"):
        main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "o")])  # neither runs nor a study
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "two.journal")))
    for name in ("first", "second"):
        optuna.create_study(study_name=name, storage=storage)
    with pytest.raises(ValueError, match=r"\['first', 'second'\].*--study-name"):
        main(["--study", str(tmp_path / "two.journal"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_mean_groups_the_seeds_of_each_setting_with_their_interval(tmp_path, capsys):
    made = {}
    for L in (5, 10):
        for seed in range(3):
            folder = tmp_path / f"L{L}_s{seed}"
            made[folder] = make_run(folder, L, 0.5, 0.3 + 0.2 * seed + (L == 10), seed=10 * L + seed)
            config = OmegaConf.load(folder / ".hydra/config.yaml")
            config.seed = seed
            OmegaConf.save(config, folder / ".hydra/config.yaml")
    out = tmp_path / "cmp"
    main([str(f) for f in made] + ["--mean", "--out", str(out), "--tracking-mode", "disabled"])
    markdown = (out / "comparison.md").read_text()
    summary = markdown.split("## Mean over seeds and splits")[1].split("## Per-class")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in summary.splitlines() if line.startswith("| ")]
    assert rows[0] == ["L", "n", *METHODS]
    for row, L in zip(rows[1:], (5, 10), strict=True):
        values = {m: [v["accuracy"][m] for f, v in made.items() if f.name.startswith(f"L{L}_")] for m in METHODS}
        assert row[:2] == [f"L={L}", "3"]
        for cell, method in zip(row[2:], METHODS, strict=True):
            mean, sd = np.mean(values[method]), np.std(values[method], ddof=1)
            assert cell == f"{mean:.1%} ± {100 * 4.3027 * sd / np.sqrt(3):.1f} (sd {100 * sd:.1f})"
    assert (out / "accuracy_mean.png").is_file() and "![accuracy_mean](accuracy_mean.png)" in markdown


def test_runs_of_a_multirun_are_named_by_the_overrides_that_differ(tmp_path):
    """A cell that swaps a config group changes many keys: its job override names it. Runs whose
    overrides do not tell them apart the way their configs do keep the config keys."""
    cells = {"alone": {"format": "ucf101", "root": "a", "generator": {"seed": 0}},
             "multitask": {"format": "multitask", "root": "b", "tasks": {"target": {"seed": 0}}}}
    folders = []
    for cell, dataset in cells.items():
        for seed in range(2):
            folder = tmp_path / f"{cell}{seed}"
            make_run(folder, 10, 0.5, 0.5 + seed, seed=seed)
            config = OmegaConf.load(folder / ".hydra/config.yaml")
            config.seed, config.dataset = seed, dataset
            OmegaConf.save(config, folder / ".hydra/config.yaml")
            OmegaConf.save([f"+paper/table3={cell}", f"seed={seed}", "tracking.mode=disabled", f"name={cell}"],
                           folder / ".hydra/overrides.yaml")
            folders.append(folder)

    def summary_rows(out: Path) -> list[list[str]]:
        main([str(f) for f in folders] + ["--mean", "--out", str(out), "--tracking-mode", "disabled"])
        summary = (out / "comparison.md").read_text().split("## Mean over")[1].split("## Per-class")[0]
        return [[c.strip() for c in line.strip("|").split("|")][:2] for line in summary.splitlines()
                if line.startswith("| ")]

    assert summary_rows(tmp_path / "by_override") == [["+paper/table3", "n"], ["+paper/table3=alone", "2"],
                                                     ["+paper/table3=multitask", "2"]]
    # the same overrides, but one run was made with another config: the overrides do not explain it
    OmegaConf.save(["+paper/table3=alone", "seed=1"], folders[3] / ".hydra/overrides.yaml")
    rows = summary_rows(tmp_path / "by_config")
    assert rows[0][0] == "format, generator.seed, root, target.seed" and len(rows) == 3


def test_runs_identical_in_every_setting_are_one_run_not_repeats(tmp_path):
    folders = [tmp_path / "first" / "quickstart", tmp_path / "again" / "quickstart"]
    for folder in folders:
        folder.parent.mkdir()
        made = make_run(folder, 10, 0.5, 0.9, seed=0)  # same settings, same seed: the same numbers
    out = tmp_path / "cmp"
    main([str(f) for f in folders] + ["--mean", "--out", str(out), "--tracking-mode", "disabled"])
    markdown = (out / "comparison.md").read_text()
    assert "Runs quickstart, quickstart are identical in every setting (seed included)" in markdown
    summary = markdown.split("## Mean over")[1].split("## Per-class")[0]
    row = next(line for line in summary.splitlines() if line.startswith("| all"))
    assert [c.strip() for c in row.strip("|").split("|")][:3] == ["all", "1", f"{made['accuracy']['temporal']:.1%} (1 run)"]
    header = next(line for line in markdown.split("## Per-class")[1].splitlines() if line.startswith("| class"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["class", "first/quickstart", "again/quickstart"]


def test_runs_of_one_split_tested_on_different_videos_are_flagged(runs, tmp_path):
    folder = runs["c"][0]
    for method in METHODS:  # run c was tested on other videos (e.g. a split drawn from another folder)
        scores = Scores.load(RunDir(folder).scores(method, "test"))
        Scores(np.array([f"w{i}" for i in range(len(scores.labels))]), scores.labels, scores.scores,
               scores.classes).save(RunDir(folder).scores(method, "test"))
    out = tmp_path / "cmp"
    main([str(f) for f, _ in runs.values()] + ["--out", str(out), "--tracking-mode", "disabled"])
    markdown = (out / "comparison.md").read_text()
    assert "Warning: these runs of one dataset and split were tested on different videos" in markdown
    assert "a, b (24 videos); c (24 videos)" in markdown
