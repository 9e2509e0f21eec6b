"""Late fusion checked against independent numpy / scikit-learn computations."""

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC
from wandb_offline import read_offline_run

from twostream.data.splits import SplitLists
from twostream.fusion import (
    SvmFusion,
    average_fusion,
    cv_splits,
    fit_svm_fusion,
    per_class_accuracy,
    svm_features,
)
from twostream.fusion.stage import run_fuse
from twostream.rundir import RunDir
from twostream.scores import Scores
from twostream.tracking import start_run

DEFAULTS = OmegaConf.load(Path(__file__).parents[1] / "conf" / "fusion" / "default.yaml").svm
TOL, SEARCH = DEFAULTS.tol, DEFAULTS.C_search  # the defaults'


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def complementary_scores(rng, n_per_class=12, appearances=3, motions=4):
    """Scores of two streams on a grid of classes: one sees appearance only, the other motion only."""
    classes = [(a, m) for a in range(appearances) for m in range(motions)]
    labels = np.repeat(np.arange(len(classes)), n_per_class)
    app = np.array([classes[k][0] for k in labels])
    mot = np.array([classes[k][1] for k in labels])
    same_app = np.array([[classes[c][0] == a for c in range(len(classes))] for a in app], float)
    same_mot = np.array([[classes[c][1] == m for c in range(len(classes))] for m in mot], float)
    spatial = softmax(3 * same_app + rng.normal(0, 0.3, same_app.shape))
    temporal = softmax(3 * same_mot + rng.normal(0, 0.3, same_mot.shape))
    return labels, spatial.astype(np.float32), temporal.astype(np.float32)


def test_average_is_numpy_mean():
    rng = np.random.default_rng(0)
    a, b, c = (softmax(rng.normal(size=(7, 5))) for _ in range(3))
    np.testing.assert_allclose(average_fusion([a, b, c]), (a + b + c) / 3, rtol=1e-6)


def test_svm_fusion_equals_independent_sklearn_fit():
    rng = np.random.default_rng(1)
    labels, spatial, temporal = complementary_scores(rng)
    fused = fit_svm_fusion([spatial, temporal], labels, C_grid=[1.0], cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search=SEARCH)
    features = np.hstack([normalize(spatial), normalize(temporal)])  # L2 per row, per stream
    np.testing.assert_allclose(svm_features([spatial, temporal]), features, rtol=1e-6)
    reference = LinearSVC(multi_class="crammer_singer", C=1.0, tol=TOL, max_iter=10000, random_state=0).fit(features, labels)
    np.testing.assert_allclose(fused.decision([spatial, temporal]), reference.decision_function(features),
                               rtol=1e-6, atol=1e-8)


def test_fusion_of_complementary_streams_beats_each_stream():
    rng = np.random.default_rng(2)
    train_labels, train_s, train_t = complementary_scores(rng)
    test_labels, test_s, test_t = complementary_scores(rng)
    accuracy = {name: float((s.argmax(1) == test_labels).mean()) for name, s in
                [("spatial", test_s), ("temporal", test_t), ("average", average_fusion([test_s, test_t]))]}
    svm = fit_svm_fusion([train_s, train_t], train_labels, C_grid=[0.1, 1, 10], cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search=SEARCH)
    accuracy["svm"] = float((svm.decision([test_s, test_t]).argmax(1) == test_labels).mean())
    # Each stream alone can only narrow the class down to 4 (spatial) or 3 (temporal) candidates.
    assert accuracy["spatial"] < 0.5 and accuracy["temporal"] < 0.5, accuracy
    assert accuracy["average"] > 0.8 and accuracy["svm"] > 0.8, accuracy


def test_svm_C_is_the_grid_value_with_the_best_cross_validated_accuracy():
    rng = np.random.default_rng(4)
    labels, spatial, temporal = complementary_scores(rng, n_per_class=8)
    # scores so noisy that C matters (on clean ones every C of the grid classifies perfectly)
    spatial, temporal = (softmax(np.log(s) + rng.normal(0, 2.0, s.shape)).astype(np.float32)
                         for s in (spatial, temporal))
    grid = [0.01, 0.1, 1, 10, 100]
    features = np.hstack([normalize(spatial), normalize(temporal)])
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    cv_accuracy = [cross_val_score(LinearSVC(multi_class="crammer_singer", C=C, tol=TOL, max_iter=10000, random_state=0),
                                   features, labels, cv=folds).mean() for C in grid]
    best = int(np.argmax(cv_accuracy))  # the first of equals, as GridSearchCV ranks them
    assert 0 < best < len(grid) - 1, cv_accuracy  # this data set's best C is inside the grid
    full = fit_svm_fusion([spatial, temporal], labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL,
                          C_search="full")
    assert grid[best] == full.C, f"C={full.C} chosen; CV accuracy per C: {dict(zip(grid, cv_accuracy, strict=True))}"
    assert full.C_tried == grid and full.C_accuracies == pytest.approx(cv_accuracy)


def test_where_accuracy_is_unimodal_in_C_the_ascending_search_chooses_the_full_grids_model():
    labels, (spatial, temporal) = noisy_scores(np.random.default_rng(10), 8)
    grid = [0.01, 0.1, 1, 10, 100]
    full = fit_svm_fusion([spatial, temporal], labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL,
                          C_search="full")
    cv_accuracy, best = full.C_accuracies, grid.index(full.C)
    # this data set's CV accuracy rises to its peak inside the grid and falls past it (unimodal)
    assert 0 < best < len(grid) - 1, cv_accuracy
    assert all(a < b for a, b in zip(cv_accuracy[:best], cv_accuracy[1:best + 1], strict=True)), cv_accuracy
    assert all(a >= b for a, b in zip(cv_accuracy[best:], cv_accuracy[best + 1:], strict=False)), cv_accuracy
    assert cv_accuracy[best + 1] < cv_accuracy[best], cv_accuracy
    ascending = fit_svm_fusion([spatial, temporal], labels, C_grid=grid[::-1], cv_folds=3, max_iter=10000, seed=0,
                               tol=TOL, C_search="ascending")  # the grid's order does not matter
    # the same C and model, having fitted only the Cs up to the first one past the peak
    assert ascending.C == full.C and ascending.C_tried == grid[:best + 2]
    assert ascending.C_accuracies == pytest.approx(cv_accuracy[:best + 2])
    assert ascending.selection_accuracy == pytest.approx(cv_accuracy[best])
    np.testing.assert_array_equal(ascending.decision([spatial, temporal]), full.decision([spatial, temporal]))


def test_the_ascending_search_stops_at_the_first_C_that_does_not_improve():
    """A plateau is where the two searches part: the ascending one keeps the smaller C of a tie and
    stops, the full grid goes on to a larger C that is better again (not unimodal)."""
    rng = np.random.default_rng(0)
    labels = np.resize(np.arange(5), 150)
    scores = [np.abs(rng.normal(size=(150, 5))) + 0.5 * np.eye(5)[labels] for _ in range(2)]
    grid = [0.01, 0.1, 1, 10, 100]
    full, ascending = (fit_svm_fusion(scores, labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL,
                                      C_search=search) for search in ("full", "ascending"))
    stop = next(k for k in range(1, len(grid)) if full.C_accuracies[k] <= max(full.C_accuracies[:k]))
    assert stop < len(grid) - 1 and max(full.C_accuracies[stop:]) > max(full.C_accuracies[:stop]), full.C_accuracies
    assert ascending.C_tried == grid[:stop + 1] and ascending.C_accuracies == full.C_accuracies[:stop + 1]
    assert ascending.C == grid[int(np.argmax(full.C_accuracies[:stop + 1]))] != full.C


def test_per_class_accuracy_matches_confusion_matrix():
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3])  # class 2 has no video
    scores = softmax(rng.normal(size=(len(labels), 4)))
    matrix = confusion_matrix(labels, scores.argmax(1), labels=range(4))
    with np.errstate(invalid="ignore"):
        expected = np.diag(matrix) / matrix.sum(1)
    np.testing.assert_array_equal(per_class_accuracy(scores, labels, 4), expected)
    assert np.isnan(per_class_accuracy(scores, labels, 4)[2])


def test_saved_svm_reloads_to_the_same_decisions(tmp_path):
    rng = np.random.default_rng(4)
    labels, spatial, temporal = complementary_scores(rng)
    fused = fit_svm_fusion([spatial, temporal], labels, C_grid=[0.1, 1], cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search=SEARCH)
    fused.save(tmp_path / "fusion" / "svm.pkl", ["spatial", "temporal"])
    loaded, streams = SvmFusion.load(tmp_path / "fusion" / "svm.pkl")
    assert streams == ["spatial", "temporal"] and loaded.C == fused.C
    np.testing.assert_array_equal(loaded.decision([spatial, temporal]), fused.decision([spatial, temporal]))


def _write_scores(output_dir: Path, stream: str, subset: str, labels, scores, classes) -> None:
    ids = np.array([f"{classes[label]}/v_{subset}_{i:03d}" for i, label in enumerate(labels)])
    Scores(ids, labels.astype(np.int64), scores, np.array(classes)).save(RunDir(output_dir).scores(stream, subset))


def test_fuse_stage_fuses_three_streams_and_records_everything(tmp_path):
    """Spatial + temporal + a third, uninformative stream: fused score files, the SVM, the results
    and the W&B run all agree with an independent computation."""
    rng = np.random.default_rng(5)
    classes = [f"class{k:02d}" for k in range(12)]
    out = tmp_path / "out"
    streams = {}
    for subset in ("train", "test"):
        labels, spatial, temporal = complementary_scores(rng, n_per_class=6)
        noise = softmax(rng.normal(size=spatial.shape)).astype(np.float32)
        streams[subset] = labels, {"spatial": spatial, "temporal": temporal, "noise": noise}
        for name, scores in streams[subset][1].items():
            _write_scores(out, name, subset, labels, scores, classes)
    cfg = OmegaConf.create({"name": "three", "seed": 0, "dataset": {"name": "synthetic", "split": 1},
                            "paths": {"output_dir": str(out)}, "streams": {s: {} for s in streams["test"][1]},
                            "fusion": {"svm": {"fit_on": "train", "C_grid": [0.1, 1, 10], "cv_folds": 3,
                                               "max_iter": 10000, "tol": TOL, "C_search": SEARCH}}})
    tracking = {"mode": "offline", "project": "twostream-test", "entity": None, "dir": str(tmp_path)}
    with start_run(tracking, stage="fuse", group="three", config={}) as tracker:
        results = run_fuse(cfg, SplitLists(classes, [], []), RunDir(cfg.paths.output_dir), tracker)

    test_labels, test_scores = streams["test"]
    train_labels, train_scores = streams["train"]
    reference = LinearSVC(multi_class="crammer_singer", C=results["svm_C"], tol=TOL, max_iter=10000,
                          random_state=0).fit(
        np.hstack([normalize(s) for s in train_scores.values()]), train_labels)
    expected = {name: s for name, s in test_scores.items()}
    expected["fusion_average"] = np.mean(list(test_scores.values()), axis=0)
    expected["fusion_svm"] = reference.decision_function(np.hstack([normalize(s) for s in test_scores.values()]))
    assert list(results["accuracy"]) == list(expected)
    for method, scores in expected.items():
        assert results["accuracy"][method] == pytest.approx(float((scores.argmax(1) == test_labels).mean()))
        matrix = confusion_matrix(test_labels, scores.argmax(1), labels=range(12))
        assert results["per_class_accuracy"][method] == pytest.approx(list(np.diag(matrix) / matrix.sum(1)))
    for method in ("fusion_average", "fusion_svm"):
        fused = Scores.load(RunDir(out).scores(method, "test"))
        np.testing.assert_allclose(fused.scores, expected[method], rtol=1e-5, atol=1e-6)
        assert list(fused.video_ids) == list(Scores.load(RunDir(out).scores("spatial", "test")).video_ids)
    assert results["accuracy"]["fusion_svm"] > max(results["accuracy"][s] for s in test_scores)
    svm, order = SvmFusion.load(out / "fusion" / "svm.pkl")
    assert order == ["spatial", "temporal", "noise"]
    np.testing.assert_allclose(svm.decision(list(test_scores.values())), expected["fusion_svm"], rtol=1e-5)
    assert json.loads((out / "results.json").read_text()) == results
    assert "| class11 |" in (out / "results.md").read_text()

    run = read_offline_run(tracker.run_dir)
    for method, value in results["accuracy"].items():
        assert run.summary[f"accuracy/{method}"] == pytest.approx(value)
    per_class = json.loads((tracker.run_dir / "files" / run.summary["per_class_accuracy"]["path"]).read_text())
    assert per_class["columns"] == ["class", *expected]
    assert [row[0] for row in per_class["data"]] == classes
    assert [row[-1] for row in per_class["data"]] == pytest.approx(results["per_class_accuracy"]["fusion_svm"])
    confusion = json.loads((tracker.run_dir / "files" / run.summary["confusion/fusion_svm"]["path"]).read_text())
    matrix = confusion_matrix(test_labels, expected["fusion_svm"].argmax(1), labels=range(12))
    assert confusion["columns"] == ["true \\ predicted", *classes]
    assert confusion["data"] == [[c, *row] for c, row in zip(classes, matrix.tolist(), strict=True)]
    assert run.artifact_files == {"three-results": ["results.json", "results.md"],
                                  "three-fusion": ["fusion_average_test.npz", "fusion_svm_test.npz", "svm.pkl"]}


def test_fits_that_stop_before_converging_are_reported_once_not_per_fit(caplog):
    import warnings  # noqa: PLC0415

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 12)
    scores = [rng.dirichlet(np.ones(4), len(labels)) for _ in range(2)]  # noise: hard to separate
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level("WARNING", logger="twostream.fusion"):
            fit_svm_fusion(scores, labels, C_grid=[10, 100], cv_folds=3, max_iter=2, seed=0, tol=TOL, C_search=SEARCH)
    assert not [w for w in caught if "converge" in str(w.message)]
    [record] = [r for r in caplog.records if "did not converge" in r.message]
    assert "fusion.svm.max_iter=2" in record.message and "in 7 of its fits" in record.message  # 2 C x 3 folds + the refit


def noisy_scores(rng, n_per_class):
    """Complementary streams blurred by noise, so that the SVM's C matters."""
    labels, spatial, temporal = complementary_scores(rng, n_per_class=n_per_class)
    return labels, [softmax(np.log(s) + rng.normal(0, 2.0, s.shape)).astype(np.float32) for s in (spatial, temporal)]


def test_with_held_out_scores_C_is_the_grid_value_most_accurate_on_them():
    rng = np.random.default_rng(6)
    (labels, train), (val_labels, val) = noisy_scores(rng, 8), noisy_scores(rng, 6)
    grid = [0.01, 0.1, 1, 10, 100]
    features = np.hstack([normalize(s) for s in train])
    val_features = np.hstack([normalize(s) for s in val])
    held_out_accuracy = [float((LinearSVC(multi_class="crammer_singer", C=C, tol=TOL, max_iter=10000, random_state=0)
                                .fit(features, labels).predict(val_features) == val_labels).mean()) for C in grid]
    best = int(np.argmax(held_out_accuracy))
    fused = fit_svm_fusion(train, labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search="full",
                           held_out=(val, val_labels))
    chosen = fused.C
    assert chosen == grid[best], dict(zip(grid, held_out_accuracy, strict=True))
    assert fused.selection_accuracy == pytest.approx(held_out_accuracy[best])
    assert fused.C != fit_svm_fusion(train, labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search=SEARCH).C  # CV differs


def _fuse(tmp_path, subsets: dict, fit_on: str, search: str = SEARCH) -> dict:
    """run_fuse on score files written from ``subsets`` (subset -> (labels, [spatial, temporal])), with
    ``fusion.svm.C_search=search``."""
    classes = [f"class{k:02d}" for k in range(12)]
    out = tmp_path / f"out_{fit_on}_{len(list(tmp_path.iterdir()))}"
    for subset, (labels, per_stream) in subsets.items():
        for stream, scores in zip(("spatial", "temporal"), per_stream, strict=True):
            _write_scores(out, stream, subset, labels, scores, classes)
    cfg = OmegaConf.create({"name": "val", "seed": 0, "dataset": {"name": "synthetic", "split": 1},
                            "paths": {"output_dir": str(out)}, "streams": {"spatial": {}, "temporal": {}},
                            "fusion": {"svm": {"fit_on": fit_on, "C_grid": [0.01, 0.1, 1, 10, 100], "cv_folds": 3,
                                               "max_iter": 10000, "tol": TOL, "C_search": search}}})
    val = [None] * len(subsets.get("val", ((), ()))[0])  # only its being non-empty matters to the stage
    tracking = {"mode": "disabled", "project": "twostream-test", "entity": None, "dir": str(tmp_path)}
    with start_run(tracking, stage="fuse", group="val", config={}) as tracker:
        return run_fuse(cfg, SplitLists(classes, [], [], val), RunDir(cfg.paths.output_dir), tracker)


def test_the_fuse_stage_records_the_Cs_its_ascending_search_fitted(tmp_path):
    rng = np.random.default_rng(7)
    subsets = {"train": noisy_scores(rng, 8), "val": noisy_scores(rng, 6), "test": noisy_scores(rng, 6)}
    (labels, train), (val_labels, val) = subsets["train"], subsets["val"]
    grid = [0.01, 0.1, 1, 10, 100]
    expected = fit_svm_fusion(train, labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL,
                              C_search="ascending", held_out=(val, val_labels))
    assert len(expected.C_tried) < len(grid)  # this data set's search stops before the grid's end
    selection = _fuse(tmp_path, subsets, "train", search="ascending")["svm_selection"]
    assert selection["C_tried"] == expected.C_tried and selection["C_accuracies"] == pytest.approx(expected.C_accuracies)
    assert selection["how"].startswith(f"best of the {len(expected.C_tried)} smallest of {len(grid)} values of C")


@pytest.mark.parametrize("fit_on", ["train", "val"])
def test_the_fuse_stage_chooses_on_validation_and_reads_test_labels_only_to_report(tmp_path, fit_on):
    rng = np.random.default_rng(7)
    subsets = {"train": noisy_scores(rng, 8), "val": noisy_scores(rng, 6), "test": noisy_scores(rng, 6)}
    results = _fuse(tmp_path, subsets, fit_on)
    (fit_labels, fitted), (val_labels, val) = subsets[fit_on], subsets["val"]
    if fit_on == "train":
        expected = fit_svm_fusion(fitted, fit_labels, C_grid=[0.01, 0.1, 1, 10, 100], cv_folds=3, max_iter=10000,
                                  seed=0, tol=TOL, C_search=SEARCH, held_out=(val, val_labels))
    else:  # cross-validated among the validation videos, fitted on all of them
        expected = fit_svm_fusion(val, val_labels, C_grid=[0.01, 0.1, 1, 10, 100], cv_folds=3, max_iter=10000,
                                  seed=0, tol=TOL, C_search=SEARCH)
    assert results["svm_C"] == expected.C and results["svm_fit_on"] == fit_on
    assert results["svm_selection"]["C_tried"] == expected.C_tried  # what was fitted, recorded
    assert results["svm_selection"]["C_accuracies"] == pytest.approx(expected.C_accuracies)
    assert results["svm_selection"]["how"] == {  # what results.md's selection line says of the choice
        "train": f"best of 5 values of C on the {len(val_labels)} validation videos; the SVM fitted on the training videos",
        "val": f"best of 5 values of C by 3-fold cross-validation (stratified) among the {len(val_labels)} "
               "validation videos it was fitted on"}[fit_on]
    assert results["val_accuracy"]["fusion_svm"] == pytest.approx(expected.selection_accuracy)
    assert results["val_accuracy"]["spatial"] == pytest.approx(float((val[0].argmax(1) == val_labels).mean()))
    assert results["val_accuracy"]["fusion_average"] == pytest.approx(
        float((average_fusion(val).argmax(1) == val_labels).mean()))
    test_labels, test = subsets["test"]
    assert results["accuracy"]["fusion_svm"] == pytest.approx(
        float((expected.decision(test).argmax(1) == test_labels).mean()))
    # every test label wrong: the same choices and validation numbers, only the test accuracies move
    wrong = {**subsets, "test": ((test_labels + 1) % 12, test)}
    again = _fuse(tmp_path, wrong, fit_on)
    assert again["svm_C"] == results["svm_C"] and again["val_accuracy"] == results["val_accuracy"]
    assert again["accuracy"] != results["accuracy"]


def test_auto_fits_the_svm_where_it_does_better_on_validation_videos(tmp_path):
    """Training scores like the others (nets that generalise) against near one-hot training scores
    (nets that fit their training videos): auto keeps, each time, the fit with the better
    validation accuracy, computed here independently, and the two cases choose differently."""
    grid = [0.01, 0.1, 1, 10, 100]
    chosen = []
    for memorised in (False, True):
        rng = np.random.default_rng(8)
        subsets = {"train": noisy_scores(rng, 12), "val": noisy_scores(rng, 6), "test": noisy_scores(rng, 6)}
        if memorised:  # the nets' training scores: each video's own class, almost surely
            labels = subsets["train"][0]
            subsets["train"] = (labels, [softmax(8 * np.eye(12)[labels] + rng.normal(0, 0.1, (len(labels), 12)))
                                         .astype(np.float32) for _ in range(2)])
        (train_labels, train), (val_labels, val) = subsets["train"], subsets["val"]
        on_train = fit_svm_fusion(train, train_labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search=SEARCH,
                                  held_out=(val, val_labels))
        on_val = fit_svm_fusion(val, val_labels, C_grid=grid, cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search=SEARCH)
        expected = "val" if on_val.selection_accuracy > on_train.selection_accuracy else "train"
        results = _fuse(tmp_path, subsets, "auto")
        assert results["svm_fit_on"] == expected, (on_train.selection_accuracy, on_val.selection_accuracy)
        assert results["svm_C"] == (on_val if expected == "val" else on_train).C
        chosen.append(expected)
    assert chosen == ["train", "val"]


def crammer_singer_objective(svm: LinearSVC, features: np.ndarray, labels: np.ndarray, C: float) -> float:
    """The primal objective liblinear minimises: 0.5 |[W b]|^2 + C sum_i max_m (margin violation of m)."""
    margins = features @ svm.coef_.T + svm.intercept_
    n = np.arange(len(labels))
    violations = margins - margins[n, labels][:, None] + 1.0
    violations[n, labels] = 0.0
    return 0.5 * (np.sum(svm.coef_ ** 2) + np.sum(svm.intercept_ ** 2)) + C * violations.max(axis=1).sum()


@pytest.mark.parametrize("C", [0.1, 1, 100])
def test_the_default_tolerance_fits_the_tight_fits_svm_closely(C):
    """The default tol stops liblinear early (experiments/scale/fusion_solvers.py): its model is within
    10 % of the optimal objective (a 1e-6 fit's), predicts as it does on >= 95 % of other videos, and is
    as accurate on them within 2 points."""
    rng = np.random.default_rng(9)
    (labels, scores), (other_labels, other) = noisy_scores(rng, 20), noisy_scores(rng, 20)
    features, other_features = svm_features(scores), svm_features(other)
    default = fit_svm_fusion(scores, labels, C_grid=[C], cv_folds=3, max_iter=10000, seed=0, tol=TOL, C_search=SEARCH).svm
    tight = LinearSVC(multi_class="crammer_singer", C=C, tol=1e-6, max_iter=100000, random_state=0).fit(features,
                                                                                                         labels)
    assert default.tol == TOL > tight.tol
    loose, best = (crammer_singer_objective(m, features, labels, C) for m in (default, tight))
    assert best <= loose <= best * 1.1, (loose, best)
    predicted, reference = default.predict(other_features), tight.predict(other_features)
    assert (predicted == reference).mean() >= 0.95
    assert abs((predicted == other_labels).mean() - (reference == other_labels).mean()) <= 0.02


def test_the_C_search_keeps_its_folds_when_a_class_has_fewer_videos_than_folds():
    """One class of one video, one of two, the rest of six: still 3 folds, every video judged once, the
    classes that fill every fold stratified (two in each), the small ones judged in as many folds as
    they have videos; every class of one video: folds of sizes within one; one video, or fits of one
    class: none."""
    labels = np.array([0] + [1] * 2 + [k for k in range(2, 6) for _ in range(6)])
    splits, how = cv_splits(labels, 3, seed=0)
    assert len(splits) == 3 and how == "stratified as far as each class's videos go"
    assert sorted(np.concatenate([judge for _, judge in splits])) == list(range(len(labels)))
    for fit, judge in splits:
        assert sorted(np.concatenate([fit, judge])) == list(range(len(labels)))
        assert all(np.sum(labels[judge] == k) == 2 for k in range(2, 6))
    assert sorted(np.sum(labels[judge] == 1) for _, judge in splits) == [0, 1, 1]
    assert cv_splits(np.repeat(np.arange(4), 3), 3, seed=0)[1] == "stratified"
    singles, how = cv_splits(np.arange(7), 3, seed=0)
    assert sorted(np.concatenate([judge for _, judge in singles])) == list(range(7))
    assert sorted(len(judge) for _, judge in singles) == [2, 2, 3]
    twos = np.repeat(np.arange(50), 2)  # every class of two videos: each judged with the other fitted
    assert all(np.isin(twos[judge], twos[fit]).all() for fit, judge in cv_splits(twos, 3, seed=0)[0])
    assert cv_splits(np.array([0]), 3, seed=0) == ([], "none")
    assert cv_splits(np.array([0, 1]), 3, seed=0) == ([], "none")  # each fit would hold one class


def test_the_fuse_stage_searches_C_when_a_class_has_a_single_validation_video(tmp_path):
    """At a tenth of UCF-101's lists one class has a single validation video: the stage still
    cross-validates over the whole grid on cv_splits' folds (it used to shrink the folds to that class's
    one and fit the grid's first C without a search)."""
    rng = np.random.default_rng(7)
    subsets = {"train": noisy_scores(rng, 8), "val": noisy_scores(rng, 6), "test": noisy_scores(rng, 6)}
    val_labels, val = subsets["val"]
    keep = np.flatnonzero(val_labels != 0)
    keep = np.sort(np.append(keep, np.flatnonzero(val_labels == 0)[0]))  # class 0: one video
    subsets["val"] = (val_labels[keep], [s[keep] for s in val])
    val_labels, val = subsets["val"]
    assert np.bincount(val_labels).min() == 1
    results = _fuse(tmp_path, subsets, "val", search="full")
    grid = [0.01, 0.1, 1, 10, 100]
    selection = results["svm_selection"]
    assert selection["C_tried"] == grid
    assert "3-fold cross-validation (stratified as far as each class's videos go)" in selection["how"]
    features = np.hstack([normalize(s) for s in val])
    folds = cv_splits(val_labels, 3, seed=0)[0]
    cv_accuracy = [cross_val_score(LinearSVC(multi_class="crammer_singer", C=C, tol=TOL, max_iter=10000, random_state=0),
                                   features, val_labels, cv=folds).mean() for C in grid]
    assert selection["C_accuracies"] == pytest.approx(cv_accuracy)
    assert results["svm_C"] == grid[int(np.argmax(cv_accuracy))]
