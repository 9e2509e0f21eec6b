"""The test protocol: per-video class scores of a stream.

Per video: ``num_positions`` evenly spaced frames (or flow stacks), each with 1 or 10 crops;
the softmax class scores are averaged over all of them.

The scores are written as score files (:mod:`twostream.scores`), which fusion reads.
"""

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from twostream.data.splits import Video
from twostream.inputs.datasets import InputSource
from twostream.inputs.transforms import protocol_crops
from twostream.scores import Scores


@torch.no_grad()
def score_videos(model: nn.Module, source: InputSource, videos: list[Video], classes: list[str], *,
                 num_positions: int, crops: int, crop_size: int, batch_size: int, device: torch.device,
                 progress: bool = True) -> Scores:
    """Softmax scores per video over ``classes``, averaged over positions x crops (the paper's test
    protocol). A net trained on more classes (merged label sets list the scored ones first) is scored
    over the first ``len(classes)`` of its outputs only."""
    model.eval().to(device)
    rows = []
    for video in tqdm(videos, desc="test", unit="video", leave=False,
                      disable=None if progress else True):  # None: off when stderr is a log file
        positions = source.test_positions(video.id, num_positions)
        batch = np.concatenate([protocol_crops(source.load(video.id, p), crop_size, crops, source.is_flow)
                                for p in positions])
        # 25 positions x 10 crops of a 2L-channel stack is large at 224 px: forward in slices.
        probs = torch.cat([torch.softmax(model(part.to(device))[:, :len(classes)], dim=1)
                           for part in torch.from_numpy(batch).split(batch_size)])
        rows.append(probs.mean(0).cpu().numpy())
    return Scores(np.array([v.id for v in videos]), np.array([v.label for v in videos], np.int64),
                  np.stack(rows).astype(np.float32), np.array(classes))
