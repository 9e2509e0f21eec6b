"""Stream inputs read from the cache, and the training dataset built on them.

An *input source* knows which positions of a video it can load (frames for the spatial stream,
flow stacks for the temporal one) and loads the float32 (C, H, W) input at a position.
Training samples one random position per video per draw, as in the paper; testing
(:mod:`twostream.train.evaluate`) takes evenly spaced positions. A position is a frame index
of the source video (the window's first frame for a stack), whatever the cache keeps.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from twostream.cache.frames import evenly_spaced
from twostream.cache.store import FlowCache
from twostream.data.splits import Video
from twostream.inputs.stacking import stack_flow
from twostream.inputs.transforms import normalize_rgb, random_crop_flip


class FrameSource:
    """Single RGB frames: the spatial stream's input (3 channels)."""

    is_flow = False
    in_channels = 3

    def __init__(self, cache: FlowCache) -> None:
        self.cache = cache

    def num_positions(self, video_id: str) -> int:
        """The source video's frames (stored or not)."""
        return self.cache.num_frames(video_id)

    def train_positions(self, video_id: str) -> np.ndarray:
        """The frames training draws from: those the cache stores (``cache.frames``)."""
        return self.cache.frame_indices(video_id)

    def test_positions(self, video_id: str, count: int) -> list[int]:
        """``count`` frames evenly spaced over the source video. A cache made with ``cache.frames``
        keeps the test protocol's; any other (validation's few) moves to the nearest stored frame."""
        stored = self.cache.frame_indices(video_id)
        wanted = np.asarray(evenly_spaced(count, self.num_positions(video_id)))
        return stored[np.abs(stored[None, :] - wanted[:, None]).argmin(axis=1)].tolist()

    def load(self, video_id: str, position: int) -> np.ndarray:
        return normalize_rgb(self.cache.read_frames(video_id, position)[0])


class FlowStackSource:
    """Stacks of L flow fields: the temporal stream's input (2L channels)."""

    is_flow = True

    def __init__(self, cache: FlowCache, L: int, stacking: str, bidirectional: bool,
                 mean_subtraction: bool) -> None:
        self.cache, self.L, self.stacking = cache, L, stacking
        self.bidirectional, self.mean_subtraction = bidirectional, mean_subtraction
        self.in_channels = 2 * L

    def num_positions(self, video_id: str) -> int:
        positions = self.cache.num_flows(video_id) - self.L + 1
        if positions < 1:
            raise ValueError(f"video {video_id!r} has {self.cache.num_flows(video_id)} flow fields, "
                             f"fewer than L={self.L}")
        return positions

    def train_positions(self, video_id: str) -> range:
        """Every stack's first frame (flow is stored for every frame)."""
        return range(self.num_positions(video_id))

    def test_positions(self, video_id: str, count: int) -> list[int]:
        """``count`` stacks evenly spaced over the video."""
        return evenly_spaced(count, self.num_positions(video_id))

    def load(self, video_id: str, position: int) -> np.ndarray:
        """The stack of the window of frames ``position`` .. ``position + L``."""
        forward = self.cache.read_flow(video_id, position, self.L)
        # A bi-directional stack uses the window's first L/2 backward fields.
        backward = self.cache.read_flow(video_id, position, self.L // 2, "bwd") if self.bidirectional else None
        return stack_flow(forward, 0, self.L, self.stacking, flow_bwd=backward,
                          bidirectional=self.bidirectional, mean_subtraction=self.mean_subtraction)


InputSource = FrameSource | FlowStackSource


class RandomPositions(Dataset):
    """Training samples: each item is one random position of one video, randomly cropped and flipped.

    ``samples_per_video`` draws per video make one epoch (the paper draws one per video per
    step). Items are (input, label, task): ``tasks`` gives each video's task (classifier head)
    for multi-task training, 0 for all by default.
    """

    def __init__(self, source: InputSource, videos: Sequence[Video], crop_size: int,
                 samples_per_video: int, tasks: Sequence[int] | None = None,
                 scales: Sequence[float] | None = None) -> None:
        self.source, self.videos, self.crop_size = source, list(videos), crop_size
        self.samples_per_video, self.scales = samples_per_video, scales
        self.tasks = list(tasks) if tasks is not None else [0] * len(self.videos)
        if len(self.tasks) != len(self.videos):
            raise ValueError(f"{len(self.tasks)} task ids for {len(self.videos)} videos")

    def __len__(self) -> int:
        return len(self.videos) * self.samples_per_video

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        k = index % len(self.videos)
        video = self.videos[k]
        positions = self.source.train_positions(video.id)
        position = int(positions[int(torch.randint(0, len(positions), (1,)))])
        x = random_crop_flip(self.source.load(video.id, position), self.crop_size, self.source.is_flow,
                             self.scales)
        return torch.from_numpy(x), video.label, self.tasks[k]
