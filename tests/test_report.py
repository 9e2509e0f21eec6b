"""The results a researcher reports: top-1, top-5, mean-class accuracy, the majority-class baseline beside
chance, a confusion matrix per method, and the SVM's selection figure kept apart from validation
accuracies; read back from results.md (parsed), results.json and the fuse stage's offline W&B run."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from omegaconf import OmegaConf
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, top_k_accuracy_score
from test_fusion import _write_scores, noisy_scores
from wandb_offline import read_offline_run

from twostream.data.splits import SplitLists
from twostream.fusion.stage import run_fuse
from twostream.rundir import RunDir
from twostream.tracking import start_run

CLASSES = [f"class{k:02d}" for k in range(12)]
METHODS = ["spatial", "temporal", "fusion_average", "fusion_svm"]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text``: its rows (the header first, the |---| line left out) of cells."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


def percent(value: float) -> str:
    return f"{value:.1%}"


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """A fuse stage over score files with a validation split and an unbalanced test set (class00 has
    many test videos, class11 few): (results, results.md text, the offline W&B run, its folder, the
    test labels, each method's test scores)."""
    tmp_path = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(11)
    subsets = {"train": noisy_scores(rng, 8), "val": noisy_scores(rng, 4)}
    labels, per_stream = noisy_scores(rng, 6)
    keep = (labels != 11) | (np.arange(len(labels)) % 6 == 0)  # class11 keeps 1 of its 6 videos
    extra = noisy_scores(rng, 6)  # class00 gets 6 more
    more = extra[0] == 0
    test_labels = np.concatenate([labels[keep], extra[0][more]])
    test = [np.concatenate([s[keep], e[more]]) for s, e in zip(per_stream, extra[1], strict=True)]
    subsets["test"] = (test_labels, test)
    out = tmp_path / "out"
    for subset, (subset_labels, scores) in subsets.items():
        for stream, stream_scores in zip(("spatial", "temporal"), scores, strict=True):
            _write_scores(out, stream, subset, subset_labels, stream_scores, CLASSES)
    cfg = OmegaConf.create({"name": "report", "seed": 0, "dataset": {"name": "synthetic", "split": 1},
                            "paths": {"output_dir": str(out)}, "streams": {"spatial": {}, "temporal": {}},
                            "train": {"keep": "last"},
                            # the fuse stage's own defaults (conf/fusion), with a shorter C grid
                            "fusion": OmegaConf.merge(OmegaConf.load(REPO / "conf/fusion/default.yaml"),
                                                      {"svm": {"C_grid": [0.1, 1, 10]}})})
    tracking = {"mode": "offline", "project": "twostream-test", "entity": None, "dir": str(tmp_path)}
    with start_run(tracking, stage="fuse", group="report", config={}) as tracker:
        results = run_fuse(cfg, SplitLists(CLASSES, [], [], [None] * len(subsets["val"][0])), RunDir(cfg.paths.output_dir),
                           tracker)
    scores = {m: np.load(out / f"scores/{m}_test.npz")["scores"] for m in METHODS}
    return (results, (out / "results.md").read_text(), read_offline_run(tracker.run_dir), tracker.run_dir,
            test_labels, scores)


def test_results_json_holds_top_1_top_5_mean_class_majority_and_confusion(fused):
    results, _, _, _, labels, scores = fused
    counts = np.bincount(labels, minlength=12)
    assert counts[0] == 12 and counts[11] == 1  # the test set is unbalanced, so the baselines differ
    assert results["chance"] == pytest.approx(1 / 12)
    assert results["majority_class"] == "class00"
    assert results["majority_baseline"] == pytest.approx(12 / len(labels)) and results["majority_baseline"] > 1 / 12
    assert results["top_k"] == 5
    for method in METHODS:  # against scikit-learn's own metrics
        assert results["accuracy"][method] == pytest.approx(float((scores[method].argmax(1) == labels).mean()))
        assert results["top_k_accuracy"][method] == pytest.approx(
            top_k_accuracy_score(labels, scores[method], k=5, labels=range(12)))
        assert results["mean_class_accuracy"][method] == pytest.approx(
            balanced_accuracy_score(labels, scores[method].argmax(1)))
        assert results["confusion"][method] == confusion_matrix(labels, scores[method].argmax(1),
                                                                labels=range(12)).tolist()
    # the metrics tell something apart: top-5 above top-1, mean-class away from top-1 on this unbalanced set
    assert all(results["top_k_accuracy"][m] > results["accuracy"][m] for m in METHODS)
    assert any(abs(results["mean_class_accuracy"][m] - results["accuracy"][m]) > 0.01 for m in METHODS)


def test_results_md_shows_the_metrics_and_keeps_the_svm_selection_apart(fused):
    results, markdown, *_ = fused
    main, per_class, *confusions = markdown_tables(markdown)
    assert main[0] == ["method", "validation top-1", "test top-1", "test top-5", "test mean-class"]
    rows = {row[0]: row[1:] for row in main[1:]}
    for method in METHODS:
        validation = "–" if method == "fusion_svm" else percent(results["val_accuracy"][method])
        assert rows[method] == [validation, percent(results["accuracy"][method]),
                                percent(results["top_k_accuracy"][method]),
                                percent(results["mean_class_accuracy"][method])]
    assert rows["majority class (always class00)"] == ["–", percent(results["majority_baseline"]), "–", "–"]
    assert rows["chance (1/C)"] == [percent(1 / 12), percent(1 / 12), percent(5 / 12), percent(1 / 12)]
    # the accuracy that chose the SVM's C is on a line of its own, named for what it is
    selection = results["svm_selection"]
    # conf's fit_on=train: C chosen on the validation videos, the SVM fitted on the training videos'
    assert selection["how"] == "best of 3 values of C on the 48 validation videos; the SVM fitted on the training videos"
    assert (f"fusion_svm's C = {results['svm_C']:g}: {percent(selection['accuracy'])} is the accuracy it was "
            f"chosen by ({selection['how']}), a selection figure, not a validation accuracy.") in markdown
    assert per_class[0] == ["class", *METHODS]
    # one confusion matrix per method, rows the true classes, read back to the counts
    assert [line[4:] for line in markdown.splitlines() if line.startswith("### ")] == METHODS
    for method, table in zip(METHODS, confusions, strict=True):
        assert table[0] == ["true \\ predicted", *CLASSES]
        assert [row[0] for row in table[1:]] == CLASSES
        assert [[int(c) for c in row[1:]] for row in table[1:]] == results["confusion"][method]


def test_the_w_and_b_run_holds_the_results_as_tables_not_charts(fused):
    results, _, run, run_dir, _, _ = fused

    def table(key: str) -> dict:
        assert run.summary[key]["_type"] == "table-file"
        return json.loads((run_dir / "files" / run.summary[key]["path"]).read_text())

    # no history rows: tables there are charted by `wandb leet` as one-point charts of their sizes
    assert [row for row in run.history if set(row) - {"_step", "_runtime", "_timestamp"}] == []
    main = table("results")
    assert main["columns"] == ["method", "validation top-1", "test top-1", "test top-5", "test mean-class"]
    rows = {row[0]: row[1:] for row in main["data"]}
    assert rows["fusion_svm"][0] is None  # its selection figure is not a validation accuracy
    assert rows["temporal"] == pytest.approx([results["val_accuracy"]["temporal"], results["accuracy"]["temporal"],
                                              results["top_k_accuracy"]["temporal"],
                                              results["mean_class_accuracy"]["temporal"]])
    assert rows["majority class (always class00)"][1] == pytest.approx(results["majority_baseline"])
    for method in METHODS:
        confusion = table(f"confusion/{method}")
        assert [row[1:] for row in confusion["data"]] == results["confusion"][method]
        assert run.summary[f"top5_accuracy/{method}"] == pytest.approx(results["top_k_accuracy"][method])
        assert run.summary[f"mean_class_accuracy/{method}"] == pytest.approx(results["mean_class_accuracy"][method])
    assert "val_accuracy/fusion_svm" not in run.summary
    assert run.summary["svm_selection_accuracy"] == pytest.approx(results["svm_selection"]["accuracy"])
    assert run.summary["majority_baseline"] == pytest.approx(results["majority_baseline"])


def test_an_old_results_file_without_the_new_metrics_still_formats(tmp_path):
    from twostream.report import write_results  # noqa: PLC0415

    _, md = write_results({"experiment": "old", "dataset": "synthetic", "split": 1, "num_classes": 2,
                           "num_test_videos": 4, "chance": 0.5, "svm_C": 1.0,
                           "accuracy": {"temporal": 0.75}}, RunDir(tmp_path))
    [[header, row, chance]] = markdown_tables(Path(md).read_text())
    assert header == ["method", "test top-1"] and row == ["temporal", "75.0%"] and chance == ["chance (1/C)", "50.0%"]
