"""Per-video score files: what the test stage writes and fusion, comparisons and analyses read.

``scores/<stream or fusion method>_<train|val|test>.npz`` in a run's output folder
(:meth:`twostream.rundir.RunDir.scores`): ``video_ids``
(str, N: the video's path under the video root, no extension), ``labels`` (int64, N, 0-based),
``scores`` (float32, N x C: softmax averaged over the test protocol, or a fusion's class scores),
``classes`` (str, C: class names in label order), ``format`` (int, 0-d: :data:`SCORES_FORMAT`'s
version). Rows are in the split list's video order, the same for every stream.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twostream.errors import MissingDataError
from twostream.fingerprint import ArtefactFormat, Outdated

_ARRAYS = ("video_ids", "labels", "scores", "classes")


def _scores_0_to_1(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Format 0 (before score files carried a version) holds the same arrays as format 1."""
    if missing := [name for name in _ARRAYS if name not in state]:
        raise Outdated(f"it has no {', '.join(missing)}")
    return state


SCORES_FORMAT = ArtefactFormat("score file", 1, upgrades={0: _scores_0_to_1},
                               fix="rerun the stage that writes it (stage=test; stage=fuse for fusion_*)")


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of videos whose highest class score is their label (top-1)."""
    return float((scores.argmax(1) == labels).mean())


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The fraction of videos whose label is among their ``k`` highest class scores (all of them when
    there are no more than ``k`` classes); a tie at the k-th place counts the earlier class."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_counts(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted (top-1) class."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels, scores.argmax(1)), 1)
    return counts


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of each class present in ``labels``, averaged over those classes (each class
    weighs the same however many videos it has)."""
    present = np.unique(labels)
    hits = scores.argmax(1) == labels
    return float(np.mean([hits[labels == c].mean() for c in present]))


@dataclass
class Scores:
    """Per-video class scores of one stream on one set of videos."""

    video_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @property
    def accuracy(self) -> float:
        return accuracy(self.scores, self.labels)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **SCORES_FORMAT.stamped({name: getattr(self, name) for name in _ARRAYS}))

    @classmethod
    def load(cls, path: Path) -> "Scores":
        if not path.is_file():
            raise MissingDataError(f"{path}: no score file; run the test stage first (stage=test)")
        with np.load(path) as f:
            state = SCORES_FORMAT.read({name: f[name] for name in f.files}, path)
        return cls(*(state[name] for name in _ARRAYS))

