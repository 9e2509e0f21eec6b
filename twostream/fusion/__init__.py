"""Late fusion of the streams' per-video softmax scores: averaging and a linear SVM."""

import logging
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from twostream.fingerprint import ArtefactFormat

log = logging.getLogger(__name__)


def _svm_0_to_1(state: dict[str, Any]) -> dict[str, Any]:
    """Format 0 (before svm.pkl carried a version): files written before 2026-12-04 lack how C was
    chosen, and before 2026-12-06 the Cs tried; read as no choice recorded."""
    return {"selection_accuracy": None, "C_tried": [], "C_accuracies": [], **state}


SVM_FORMAT = ArtefactFormat("fusion SVM", 1, upgrades={0: _svm_0_to_1}, fix="rerun stage=fuse")


def average_fusion(stream_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the streams' (N, C) softmax scores."""
    return np.mean(np.stack(stream_scores), axis=0)


def svm_features(stream_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenation of each stream's L2-normalised score vectors: (N, C * streams)."""
    return np.concatenate([s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
                           for s in stream_scores], axis=1)


def per_class_accuracy(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy over each class's videos, (num_classes,); NaN for a class with no video."""
    hits = np.bincount(labels, weights=scores.argmax(1) == labels, minlength=num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / counts


@dataclass
class SvmFusion:
    """A fitted Crammer-Singer linear SVM over the streams' scores, and the C that CV chose."""

    svm: LinearSVC
    C: float
    selection_accuracy: float | None = None  # the accuracy C was chosen by (held-out or cross-validated)
    C_tried: list[float] = field(default_factory=list)  # the Cs fitted to choose C, in the order tried
    C_accuracies: list[float] = field(default_factory=list)  # their selection accuracies (none without a choice)

    def decision(self, stream_scores: Sequence[np.ndarray]) -> np.ndarray:
        """(N, C) class scores of the fused model."""
        margins = self.svm.decision_function(svm_features(stream_scores))
        # With two classes scikit-learn returns only class 1's margin, (N,): spell out both columns.
        return np.stack([-margins, margins], axis=1) if margins.ndim == 1 else margins

    def save(self, path: Path, streams: Sequence[str]) -> None:
        """Pickle the model with the stream order its features expect and the scikit-learn version.

        Like any pickle, load it only from a source you trust.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            pickle.dump(SVM_FORMAT.stamped({"svm": self.svm, "C": self.C, "selection_accuracy": self.selection_accuracy,
                                            "C_tried": self.C_tried, "C_accuracies": self.C_accuracies,
                                            "streams": list(streams), "sklearn_version": sklearn.__version__}), f)

    @classmethod
    def load(cls, path: Path) -> tuple["SvmFusion", list[str]]:
        """A model written by :meth:`save` (an older format upgraded by :data:`SVM_FORMAT`), and its
        stream order."""
        with path.open("rb") as f:
            state = SVM_FORMAT.read(pickle.load(f), path)
        return cls(state["svm"], state["C"], state["selection_accuracy"], state["C_tried"],
                   state["C_accuracies"]), state["streams"]


def cv_splits(labels: np.ndarray, cv_folds: int, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The folds the C search cross-validates over, and how they were drawn; no folds where none serve.

    ``cv_folds`` folds whatever the smallest class (at most one fold per video). Where every class
    has at least ``cv_folds`` videos, scikit-learn's ``StratifiedKFold`` (shuffled, ``seed``).
    Otherwise the videos are dealt to the folds round-robin, class after class (classes and the
    videos within each in a random order): stratified as far as each class's videos go, i.e. a
    class of k < ``cv_folds`` videos is judged in k different folds, each time with its other
    videos in the fit, and the folds' sizes differ by at most one (plain shuffled folds put both
    videos of a 2-video class in one fold more often than not: experiments/scale). No folds (an
    empty list) for fewer than 2 videos or where a fold would fit one class only: the SVM then
    fits the grid's first C without a search. Shrinking the folds to the smallest class, as
    before, turned the search off wherever one class had a single video (experiments/scale).
    """
    counts = np.bincount(labels)
    folds = min(cv_folds, len(labels))
    if folds < 2:
        return [], "none"
    if counts[counts > 0].min() >= folds:
        how, splits = "stratified", list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels))
    else:
        rng = np.random.default_rng(seed)
        order = np.lexsort((rng.random(len(labels)), rng.permutation(len(counts))[labels]))  # by class, shuffled
        fold_of = np.empty(len(labels), dtype=int)
        fold_of[order] = np.arange(len(labels)) % folds
        how = "stratified as far as each class's videos go"
        splits = [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(folds)]
    if any(len(np.unique(labels[fit])) < 2 for fit, _ in splits):
        return [], "none"
    return splits, how


C_SEARCHES = ("ascending", "full")  # fusion.svm.C_search: stop at the first C that does not improve, or all


def _choose_C(C_grid: Sequence[float], accuracy_of: Callable[[float], float], search: str
              ) -> tuple[int, list[float], list[float]]:
    """Walk ``C_grid`` from the smallest C up, scoring each with ``accuracy_of``; (index of the chosen C
    among the tried, the Cs tried, their accuracies). The best accuracy wins, the smaller C on a tie.
    ``ascending`` stops at the first C that does not beat the best so far: where the accuracy is
    unimodal in C it chooses what the full grid chooses, without fitting the larger Cs, which cost
    the solver the most passes (experiments/scale)."""
    tried, accuracies = [], []
    for C in sorted(float(c) for c in C_grid):
        accuracy = accuracy_of(C)
        improves = not accuracies or accuracy > max(accuracies)
        tried.append(C)
        accuracies.append(accuracy)
        if search == "ascending" and not improves:
            break
    return int(np.argmax(accuracies)), tried, accuracies  # argmax: the first, i.e. the smaller C, on a tie


def fit_svm_fusion(stream_scores: Sequence[np.ndarray], labels: np.ndarray, *, C_grid: Sequence[float],
                   cv_folds: int, max_iter: int, seed: int, tol: float, C_search: str,
                   held_out: tuple[Sequence[np.ndarray], np.ndarray] | None = None) -> SvmFusion:
    """Fit ``LinearSVC(multi_class="crammer_singer")`` on ``stream_scores``, choosing C from ``C_grid``.

    With ``held_out`` (other videos' stream scores and labels, e.g. the validation split), each C is
    fitted on ``stream_scores`` and the one most accurate on ``held_out`` is kept; otherwise C is
    chosen by ``cv_folds``-fold cross-validation on ``stream_scores`` (:func:`cv_splits`: stratified
    where the classes allow; a single-value grid, or too few videos to split, runs no CV). Either
    way the Cs are tried from the smallest up, the smaller C wins a tie, and ``C_search`` says
    whether to try them all (``full``) or to stop at the first C that is no more accurate than the
    best before it (``ascending``: the same C wherever the accuracy is unimodal in C).
    ``selection_accuracy`` is the accuracy that chose C: on ``held_out``, or the mean over the CV
    folds; ``C_tried`` and ``C_accuracies`` record the search. Fits that stop at ``max_iter`` before
    converging are reported in one log line (not one warning per fit).

    ``tol`` is liblinear's stopping tolerance, the largest violation of the dual's optimality
    conditions it accepts. 0.1 is liblinear's own default for this solver; scikit-learn's 1e-4 took
    5-20x the iterations for the same held-out accuracy at 101 classes (experiments/scale/fusion_solvers.py).
    """
    if C_search not in C_SEARCHES:
        raise ValueError(f"C_search={C_search!r}: one of {C_SEARCHES}")
    features = svm_features(stream_scores)
    base = LinearSVC(multi_class="crammer_singer", tol=tol, max_iter=max_iter, random_state=seed)
    splits = [] if held_out is not None or len(C_grid) == 1 else cv_splits(labels, cv_folds, seed)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if held_out is not None:
            held_features, held_labels = svm_features(held_out[0]), held_out[1]
            fits = {}

            def held_out_accuracy(C: float) -> float:
                fits[C] = clone(base).set_params(C=C).fit(features, labels)
                return float((fits[C].predict(held_features) == held_labels).mean())

            best, tried, accuracies = _choose_C(C_grid, held_out_accuracy, C_search)
            fused = SvmFusion(fits[tried[best]], tried[best], accuracies[best], tried, accuracies)
        elif not splits:
            C = float(C_grid[0])
            fused = SvmFusion(base.set_params(C=C).fit(features, labels), C, None, [C], [])
        else:
            def cv_accuracy(C: float) -> float:  # the mean of the folds' accuracies, as GridSearchCV scores
                return float(np.mean([clone(base).set_params(C=C).fit(features[fit], labels[fit])
                                      .score(features[judge], labels[judge]) for fit, judge in splits]))

            best, tried, accuracies = _choose_C(C_grid, cv_accuracy, C_search)
            refit = clone(base).set_params(C=tried[best]).fit(features, labels)
            fused = SvmFusion(refit, tried[best], accuracies[best], tried, accuracies)
    unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if unconverged:
        log.warning("the fusion SVM did not converge within fusion.svm.max_iter=%d iterations in %d of its fits "
                    "(C tried %s): its margins are approximate; raise fusion.svm.max_iter if the C it chose (%g) "
                    "is among them", max_iter, unconverged, fused.C_tried, fused.C)
    for w in caught:  # anything else is passed on as it came
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fused
