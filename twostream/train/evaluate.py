"""The test protocol: per-video class scores of a stream.

Per video: ``num_positions`` evenly spaced frames (or flow stacks), each with 1 or 10 crops;
the softmax class scores are averaged over all of them. One :class:`TestProtocol`, built from the
config by :meth:`TestProtocol.from_config`, scores the test stage's videos, per-epoch validation
(:meth:`TestProtocol.validation`: fewer positions, centre crop only) and predict's videos.

The scores are written as score files (:mod:`twostream.scores`), which fusion reads.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from twostream.data.splits import Video
from twostream.inputs.datasets import InputSource
from twostream.inputs.transforms import protocol_crops
from twostream.scores import Scores


@dataclass(frozen=True)
class TestProtocol:
    """How a stream's videos are scored: ``num_positions`` evenly spaced positions per video, each
    with ``crops`` crops (10: four corners and the centre, and their mirrors; 1: the centre) of
    ``crop_size`` pixels, forwarded ``batch_size`` crops at a time on ``device``."""

    __test__ = False  # not a pytest test class, despite its name

    num_positions: int
    crops: int
    crop_size: int
    batch_size: int
    device: torch.device
    progress: bool = True

    @classmethod
    def from_config(cls, cfg: DictConfig, device: torch.device, progress: bool = True) -> "TestProtocol":
        """The protocol the config sets: ``test`` (positions, crops, batch size) at the training crop size."""
        return cls(num_positions=cfg.test.num_positions, crops=cfg.test.crops, crop_size=cfg.train.crop_size,
                   batch_size=cfg.test.batch_size, device=device, progress=progress)

    def validation(self, num_positions: int) -> "TestProtocol":
        """Per-epoch validation's cheaper protocol: ``num_positions`` positions, the centre crop only,
        no progress bar."""
        return dataclasses.replace(self, num_positions=num_positions, crops=1, progress=False)

    @torch.no_grad()
    def score(self, model: nn.Module, source: InputSource, videos: list[Video], classes: list[str]) -> Scores:
        """Softmax scores per video over ``classes``, averaged over positions x crops. A net trained on
        more classes (merged label sets list the scored ones first) is scored over the first
        ``len(classes)`` of its outputs only."""
        model.eval().to(self.device)
        rows = []
        for video in tqdm(videos, desc="test", unit="video", leave=False,
                          disable=None if self.progress else True):  # None: off when stderr is a log file
            positions = source.test_positions(video.id, self.num_positions)
            batch = np.concatenate([protocol_crops(source.load(video.id, p), self.crop_size, self.crops, source.is_flow)
                                    for p in positions])
            # 25 positions x 10 crops of a 2L-channel stack is large at 224 px: forward in slices.
            probs = torch.cat([torch.softmax(model(part.to(self.device))[:, :len(classes)], dim=1)
                               for part in torch.from_numpy(batch).split(self.batch_size)])
            rows.append(probs.mean(0).cpu().numpy())
        return Scores(np.array([v.id for v in videos]), np.array([v.label for v in videos], np.int64),
                      np.stack(rows).astype(np.float32), np.array(classes))
