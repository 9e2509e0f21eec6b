"""The fusion SVM's C search at UCF-101's shape: stopping tolerances, and the full grid against an ascending one.

Synthetic per-video softmax scores of two noisy streams over 101 classes (each stream confuses
every class with one other class of its own, as nets confuse similar actions) at a tenth of split 1's
validation videos (214), all of them (2,137) and its training videos (7,400), in two regimes: nets as
accurate as the paper's (about 70 % and 80 % alone) and weak ones (a one-epoch tiny net's). Each
candidate runs the fuse stage's whole fit (:func:`fit_svm_fusion`: 3-fold CV over the default C grid,
then the refit) and is judged on 3,000 fresh videos from the same generator (never test labels):
seconds, chosen C, its CV accuracy, held-out accuracy, the Cs fitted, and the share of held-out
predictions equal to the first candidate's. ``--compare tol``: scikit-learn's tol=1e-4 against looser
ones; ``--compare search`` (the default): the full C grid against the ascending search that stops at
the first C no more accurate (``fusion.svm.C_search``), both at tol=0.1; ``--compare folds``: the C
search's folds where a class has fewer videos than folds (:func:`cv_splits`, dealt class by class:
stratified as far as each class goes) against plain shuffled folds and the old rule (folds shrunk to the smallest class,
no search below 2), with the share of judged videos whose class the fit never saw. ``--scores DIR ...`` runs the
same on a run's score files (``outputs/scores``) as the fuse stage fits them (``fit_on=val``: on the
validation videos' scores), judged on the training videos' scores, which the SVM never saw (never the
test labels). Run from the repository root::

    python experiments/scale/fusion_solvers.py
    python experiments/scale/fusion_solvers.py --scores data/scale/{tenth,third,all}/outputs/scores
"""

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.svm import LinearSVC

from twostream.fusion import cv_splits, fit_svm_fusion, svm_features
from twostream.rundir import RunDir
from twostream.scores import Scores

CLASSES = 101
C_GRID = [0.1, 1, 10, 100]
REGIMES = {"paper-like": 4.5, "weak": 1.5}  # logit strength of the true class
CANDIDATES = {  # name: (liblinear's tol, fusion.svm.C_search)
    "tol": {"today (tol=1e-4)": (1e-4, "full"), "tol=1e-2": (1e-2, "full"),
            "tol=0.1 (liblinear's default)": (0.1, "full")},
    "search": {"full grid (tol=0.1)": (0.1, "full"), "ascending, stop early (tol=0.1)": (0.1, "ascending")},
    "folds": {"dealt class by class (today)": (0.1, "full"), "shuffled (KFold)": (0.1, "full"),
              "shrunk to the smallest class (before)": (0.1, "full")},
}


def folds_of(candidate: str, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 3 CV folds each ``--compare folds`` candidate draws (seed 0, as the stage's default seed)."""
    if candidate.startswith("dealt"):
        return cv_splits(labels, 3, 0)[0]
    if candidate.startswith("shuffled"):
        return list(KFold(3, shuffle=True, random_state=0).split(labels))
    folds = min(3, int(np.bincount(labels).min()))
    return [] if folds < 2 else list(StratifiedKFold(folds, shuffle=True, random_state=0).split(labels, labels))


def compare_folds(label: str, n: int, scores: Sequence[np.ndarray], labels: np.ndarray,
                  held_scores: Sequence[np.ndarray], held_labels: np.ndarray) -> None:
    """One row per fold rule: the full C grid cross-validated on its folds and the refit (the grid's
    first C, unsearched, where it has no folds), judged on ``held_scores``; "unseen" is the share of
    the judged videos whose class is absent from their fold's fit."""
    features, held = svm_features(scores), svm_features(held_scores)
    base = LinearSVC(multi_class="crammer_singer", tol=0.1, max_iter=10000, random_state=0)
    for name in CANDIDATES["folds"]:
        start = time.perf_counter()
        splits = folds_of(name, labels)
        accuracies = [np.mean([clone(base).set_params(C=C).fit(features[fit], labels[fit])
                               .score(features[judge], labels[judge]) for fit, judge in splits]) for C in C_GRID
                      ] if splits else []
        C = C_GRID[int(np.argmax(accuracies))] if splits else C_GRID[0]
        held_accuracy = clone(base).set_params(C=C).fit(features, labels).score(held, held_labels)
        seconds = time.perf_counter() - start
        unseen = sum(np.isin(labels[judge], labels[fit], invert=True).sum() for fit, judge in splits) / n
        cv = f"{max(accuracies):.3f}" if splits else "-"
        print(f"| {label} | {n} | {name} | {seconds:.1f} | {C:g} | {cv} | {held_accuracy:.3f} | {len(splits)} "
              f"| {unseen:.3f} |", flush=True)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def stream_scores(rng: np.random.Generator, labels: np.ndarray, strength: float, confused: np.ndarray
                  ) -> np.ndarray:
    """Softmax scores: the true class and the class it is confused with stand out by a random amount."""
    n = len(labels)
    logits = rng.normal(0, 1.0, (n, CLASSES))
    logits[np.arange(n), labels] += strength * rng.uniform(0, 1.5, n)
    logits[np.arange(n), confused[labels]] += 0.6 * strength * rng.uniform(0, 1.5, n)
    return softmax(logits).astype(np.float32)


def videos(rng: np.random.Generator, n: int, strength: float, confusions: list[np.ndarray]
           ) -> tuple[list[np.ndarray], np.ndarray]:
    labels = np.resize(np.arange(CLASSES), n)  # every class about equally often, as in UCF-101's lists
    return [stream_scores(rng, labels, s, c) for s, c in zip((strength, 1.3 * strength), confusions,
                                                              strict=True)], labels


def compare(label: str, n: int, candidates: dict[str, tuple[float, str]], scores: Sequence[np.ndarray],
            labels: np.ndarray, held_scores: Sequence[np.ndarray], held_labels: np.ndarray) -> None:
    """One table row per candidate: the fuse stage's whole fit on ``scores``, judged on ``held_scores``."""
    reference = None
    for name, (tol, search) in candidates.items():
        start = time.perf_counter()
        fused = fit_svm_fusion(scores, labels, C_grid=C_GRID, cv_folds=3, max_iter=10000, seed=0, tol=tol,
                               C_search=search)
        seconds = time.perf_counter() - start
        predicted = fused.decision(held_scores).argmax(1)
        reference = predicted if reference is None else reference
        cv = "-" if fused.selection_accuracy is None else f"{fused.selection_accuracy:.3f}"
        print(f"| {label} | {n} | {name} | {seconds:.1f} | {fused.C:g} | {cv} | {(predicted == held_labels).mean():.3f} "
              f"| {(predicted == reference).mean():.3f} | {', '.join(f'{c:g}' for c in fused.C_tried)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, nargs="+", default=[214, 2137, 7400])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--compare", default="search", choices=list(CANDIDATES))
    parser.add_argument("--scores", type=Path, nargs="+", help="score folders of runs (outputs/scores) instead "
                        "of synthetic scores: fitted on their validation videos', judged on their training videos'")
    args = parser.parse_args()
    candidates = CANDIDATES[args.compare]
    run = (lambda label, n, *data: compare_folds(label, n, *data)) if args.compare == "folds" else \
        (lambda label, n, *data: compare(label, n, candidates, *data))
    # 3-fold CV at 214 videos over 101 classes: scikit-learn's "more classes than half the samples" note
    warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
    print("| scores | videos | candidate | seconds | C | CV accuracy | held-out accuracy | "
          + ("folds | unseen |" if args.compare == "folds" else "same predictions as the first | Cs fitted |")
          + "\n|---|---:|---|---:|---:|---:|---:|---:|---|", flush=True)
    for folder in args.scores or []:
        subsets = {subset: [Scores.load(RunDir(folder.parent).scores(stream, subset)) for stream in ("spatial", "temporal")]
                   for subset in ("val", "train")}
        val, train = subsets["val"], subsets["train"]
        run(str(folder), len(val[0].labels), [s.scores for s in val], val[0].labels,
            [s.scores for s in train], train[0].labels)
    for regime in [] if args.scores else args.regimes:
        strength = REGIMES[regime]
        rng = np.random.default_rng(0)
        confusions = [rng.permutation(CLASSES) for _ in range(2)]
        held_scores, held_labels = videos(rng, 3000, strength, confusions)
        for n in args.videos:
            scores, labels = videos(rng, n, strength, confusions)
            run(regime, n, scores, labels, held_scores, held_labels)


if __name__ == "__main__":
    main()
