"""The test protocol and the per-video score files that fusion reads.

Per video: ``num_positions`` evenly spaced frames (or flow stacks), each with 1 or 10 crops;
the softmax class scores are averaged over all of them.

Score file ``scores/<stream>_<train|test>.npz``: ``video_ids`` (str, N), ``labels`` (int64, N),
``scores`` (float32, N x C softmax), ``classes`` (str, C). Rows are in the split list's video
order, the same for every stream.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from twostream.data.datasets import InputSource
from twostream.data.splits import Video
from twostream.data.transforms import protocol_crops


@dataclass
class Scores:
    """Per-video class scores of one stream on one set of videos."""

    video_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @property
    def accuracy(self) -> float:
        return float((self.scores.argmax(1) == self.labels).mean())

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, video_ids=self.video_ids, labels=self.labels, scores=self.scores, classes=self.classes)

    @classmethod
    def load(cls, path: Path) -> "Scores":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no score file; run the test stage first (stage=test)")
        with np.load(path) as f:
            return cls(f["video_ids"], f["labels"], f["scores"], f["classes"])


def evenly_spaced(count: int, available: int) -> list[int]:
    """``count`` positions spread evenly over ``available`` (all of them if there are fewer)."""
    if available <= count:
        return list(range(available))
    return np.linspace(0, available - 1, count).round().astype(int).tolist()


@torch.no_grad()
def score_videos(model: nn.Module, source: InputSource, videos: list[Video], classes: list[str], *,
                 num_positions: int, crops: int, crop_size: int, batch_size: int, device: torch.device,
                 progress: bool = True) -> Scores:
    """Softmax scores per video, averaged over positions x crops (the paper's test protocol)."""
    model.eval().to(device)
    rows = []
    for video in tqdm(videos, desc="test", unit="video", leave=False, disable=not progress):
        positions = evenly_spaced(num_positions, source.num_positions(video.id))
        batch = np.concatenate([protocol_crops(source.load(video.id, p), crop_size, crops, source.is_flow)
                                for p in positions])
        # 25 positions x 10 crops of a 2L-channel stack is large at 224 px: forward in slices.
        probs = torch.cat([torch.softmax(model(part.to(device)), dim=1)
                           for part in torch.from_numpy(batch).split(batch_size)])
        rows.append(probs.mean(0).cpu().numpy())
    return Scores(np.array([v.id for v in videos]), np.array([v.label for v in videos], np.int64),
                  np.stack(rows).astype(np.float32), np.array(classes))


def scores_path(output_dir: str | Path, stream: str, subset: str) -> Path:
    """Where the score file of ``stream`` on the ``train`` or ``test`` videos lives."""
    return Path(output_dir) / "scores" / f"{stream}_{subset}.npz"
