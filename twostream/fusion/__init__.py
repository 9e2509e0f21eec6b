"""Late fusion of the streams' per-video softmax scores: averaging and a linear SVM."""

import logging
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import LinearSVC

log = logging.getLogger(__name__)


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
            pickle.dump({"svm": self.svm, "C": self.C, "selection_accuracy": self.selection_accuracy,
                         "streams": list(streams),
                         "sklearn_version": sklearn.__version__}, f)

    @classmethod
    def load(cls, path: Path) -> tuple["SvmFusion", list[str]]:
        """A model written by :meth:`save`, and its stream order."""
        with path.open("rb") as f:
            state = pickle.load(f)
        return cls(state["svm"], state["C"], state.get("selection_accuracy")), state["streams"]


def fit_svm_fusion(stream_scores: Sequence[np.ndarray], labels: np.ndarray, *, C_grid: Sequence[float],
                   cv_folds: int, max_iter: int, seed: int, tol: float,
                   held_out: tuple[Sequence[np.ndarray], np.ndarray] | None = None) -> SvmFusion:
    """Fit ``LinearSVC(multi_class="crammer_singer")`` on ``stream_scores``, choosing C from ``C_grid``.

    With ``held_out`` (other videos' stream scores and labels, e.g. the validation split), each C is
    fitted on ``stream_scores`` and the one most accurate on ``held_out`` is kept (the grid's
    earliest on a tie); otherwise C is chosen by stratified cross-validation on ``stream_scores`` (with fewer
    samples per class than ``cv_folds`` the folds shrink to what the data allows; a single-value
    grid runs no CV). ``selection_accuracy`` is the accuracy that chose C: on ``held_out``, or the
    mean over the CV folds. Fits that stop at ``max_iter`` before converging are reported in one
    log line (not one warning per fit).

    ``tol`` is liblinear's stopping tolerance, the largest violation of the dual's optimality
    conditions it accepts. 0.1 is liblinear's own default for this solver; scikit-learn's 1e-4 took
    5-20x the iterations for the same held-out accuracy at 101 classes (experiments/scale/fusion_solvers.py).
    """
    features = svm_features(stream_scores)
    base = LinearSVC(multi_class="crammer_singer", tol=tol, max_iter=max_iter, random_state=seed)
    folds = min(cv_folds, int(np.bincount(labels).min()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if held_out is not None:
            held_features, held_labels = svm_features(held_out[0]), held_out[1]
            fits = [clone(base).set_params(C=float(C)).fit(features, labels) for C in C_grid]
            accuracies = [float((fit.predict(held_features) == held_labels).mean()) for fit in fits]
            best = int(np.argmax(accuracies))  # the first, i.e. the grid's earliest C, on a tie
            fused = SvmFusion(fits[best], float(C_grid[best]), accuracies[best])
        elif len(C_grid) == 1 or folds < 2:
            C = float(C_grid[0])
            fused = SvmFusion(base.set_params(C=C).fit(features, labels), C)
        else:
            search = GridSearchCV(base, {"C": list(C_grid)},
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
            search.fit(features, labels)
            fused = SvmFusion(search.best_estimator_, float(search.best_params_["C"]), float(search.best_score_))
    unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if unconverged:
        log.warning("the fusion SVM did not converge within fusion.svm.max_iter=%d iterations in %d of its fits "
                    "(C grid %s): its margins are approximate; raise fusion.svm.max_iter if the C it chose (%g) "
                    "is among them", max_iter, unconverged, list(C_grid), fused.C)
    for w in caught:  # anything else is passed on as it came
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fused
