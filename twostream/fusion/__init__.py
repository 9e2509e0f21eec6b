"""Late fusion of the streams' per-video softmax scores: averaging and a linear SVM."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import LinearSVC


def average_fusion(stream_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the streams' (N, C) softmax scores."""
    return np.mean(np.stack(stream_scores), axis=0)


def svm_features(stream_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenation of each stream's L2-normalised score vectors: (N, C * streams)."""
    return np.concatenate([s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
                           for s in stream_scores], axis=1)


@dataclass
class SvmFusion:
    """A fitted Crammer-Singer linear SVM over the streams' scores, and the C that CV chose."""

    svm: LinearSVC
    C: float

    def decision(self, stream_scores: Sequence[np.ndarray]) -> np.ndarray:
        """(N, C) class scores of the fused model."""
        return self.svm.decision_function(svm_features(stream_scores))


def fit_svm_fusion(stream_scores: Sequence[np.ndarray], labels: np.ndarray, *, C_grid: Sequence[float],
                   cv_folds: int, max_iter: int, seed: int) -> SvmFusion:
    """Fit ``LinearSVC(multi_class="crammer_singer")`` on training scores, C by stratified CV.

    With fewer samples per class than ``cv_folds`` the folds shrink to what the data allows;
    with a single-value grid no CV is run.
    """
    features = svm_features(stream_scores)
    base = LinearSVC(multi_class="crammer_singer", max_iter=max_iter, random_state=seed)
    folds = min(cv_folds, int(np.bincount(labels).min()))
    if len(C_grid) == 1 or folds < 2:
        C = float(C_grid[0])
        return SvmFusion(base.set_params(C=C).fit(features, labels), C)
    search = GridSearchCV(base, {"C": list(C_grid)},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    search.fit(features, labels)
    return SvmFusion(search.best_estimator_, float(search.best_params_["C"]))
