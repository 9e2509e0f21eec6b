"""The test protocol's call site: what ``TestProtocol.score`` feeds the model and how it averages the scores.

A stub input source serves random inputs and records the positions asked for; a stub model records
the crops it is given and scores them with a fixed linear map. The expected crops (4 corners + centre
and their mirrors, x channels negated for flow) and the expected scores are built here by hand.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from twostream.data.splits import Video
from twostream.inputs.datasets import FlowStackSource
from twostream.train.evaluate import TestProtocol

H, W, CROP = 12, 16, 8  # inputs of 12x16 pixels, crops of 8x8
# (top, left) of the protocol's five crops of a 12x16 input, worked out by hand
BOXES = {"top-left": (0, 0), "top-right": (0, 8), "bottom-left": (4, 0), "bottom-right": (4, 8), "centre": (2, 4)}
CLASSES = ["a", "b", "c", "d", "e"]


class RecordingSource:
    """An input source with a random (C, H, W) input per video and position; records what is loaded."""

    def __init__(self, positions: dict[str, int], is_flow: bool) -> None:
        rng = np.random.default_rng(0)
        self.is_flow = is_flow
        self.in_channels = 4 if is_flow else 3  # a flow stack of L=2: channels x1, y1, x2, y2
        self.inputs = {v: rng.normal(size=(n, self.in_channels, H, W)).astype(np.float32)
                       for v, n in positions.items()}
        self.loaded: dict[str, list[int]] = {v: [] for v in positions}

    def num_positions(self, video_id: str) -> int:
        return len(self.inputs[video_id])

    # the real sources' choice of test positions (evenly spaced over num_positions), not a stub's
    test_positions = FlowStackSource.test_positions

    def load(self, video_id: str, position: int) -> np.ndarray:
        self.loaded[video_id].append(position)
        return self.inputs[video_id][position].copy()


class RecordingLinearModel(nn.Module):
    """Logits = a fixed random linear map of the flattened crop; records every crop and the mode it ran in."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        weights = np.random.default_rng(1).normal(size=(in_channels * CROP * CROP, len(CLASSES)))
        self.weights = weights * 2 / np.sqrt(weights.shape[0])  # logits of order 1: the softmax does not saturate
        self.seen: list[np.ndarray] = []
        self.training_flags: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.extend(x.numpy().copy())
        self.training_flags.append(self.training)
        return torch.from_numpy(x.reshape(len(x), -1).numpy().astype(np.float64) @ self.weights)


def mirrored(crop: np.ndarray, is_flow: bool) -> np.ndarray:
    """Left-right mirror; a flow stack's x channels (0, 2) change sign, its y channels (1, 3) do not."""
    out = crop[:, :, ::-1].copy()
    if is_flow:
        out[[0, 2]] *= -1
    return out


def expected_crops(x: np.ndarray, crops: int, is_flow: bool) -> dict[str, np.ndarray]:
    """The protocol's crops of one input, by name: the centre alone, or 4 corners + centre and mirrors."""
    names = ["centre"] if crops == 1 else list(BOXES)
    out = {}
    for name in names:
        top, left = BOXES[name]
        out[name] = x[:, top:top + CROP, left:left + CROP]
        if crops == 10:
            out[f"mirrored {name}"] = mirrored(out[name], is_flow)
    return out


def run(positions: dict[str, int], *, num_positions: int, crops: int = 10, is_flow: bool = True,
        batch_size: int = 7):
    source = RecordingSource(positions, is_flow)
    model = RecordingLinearModel(source.in_channels).train()  # the protocol must switch it to eval
    videos = [Video(v, Path(f"{v}.avi"), k % len(CLASSES), None) for k, v in enumerate(positions)]
    protocol = TestProtocol(num_positions=num_positions, crops=crops, crop_size=CROP, batch_size=batch_size,
                            device=torch.device("cpu"), progress=False)
    scores = protocol.score(model, source, videos, CLASSES)
    return source, model, videos, scores


def test_positions_are_evenly_spaced_over_the_whole_video_first_and_last_included():
    # np.linspace(0, n - 1, k) rounded, worked out by hand: 9 positions -> 0, 4, 8; 11 -> 0, 3.33, 6.67, 10
    source, *_ = run({"nine": 9, "eleven": 11, "two": 2, "one": 1}, num_positions=3, crops=1)
    assert source.loaded["nine"] == [0, 4, 8], "3 of 9 positions must be the first, the middle and the last"
    assert source.loaded["two"] == [0, 1], "a video with fewer positions than asked must use all of them"
    assert source.loaded["one"] == [0]
    source, *_ = run({"eleven": 11}, num_positions=4, crops=1)
    assert source.loaded["eleven"] == [0, 3, 7, 10], "4 of 11 positions: evenly spaced, first and last included"


@pytest.mark.parametrize("is_flow", [True, False], ids=["flow", "rgb"])
@pytest.mark.parametrize("crops", [10, 1])
def test_the_model_gets_corners_centre_and_mirrors_of_every_position_in_eval_mode(crops, is_flow):
    source, model, _, _ = run({"v": 9}, num_positions=3, crops=crops, is_flow=is_flow)
    expected = {f"{name} of position {p}": crop for p in (0, 4, 8)
                for name, crop in expected_crops(source.inputs["v"][p], crops, is_flow).items()}
    missing = [name for name, crop in expected.items() if not any(np.array_equal(crop, s) for s in model.seen)]
    negation = " (a flow stack's mirror has its x channels negated, an RGB frame's has not)" if crops == 10 else ""
    assert not missing, f"crops never given to the model{negation}: {missing}"
    assert len(model.seen) == len(expected), f"{len(model.seen)} crops scored, expected {len(expected)}"
    assert model.training_flags and not any(model.training_flags), "the protocol must run the model in eval mode"


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("crops", [10, 1])
def test_scores_are_the_softmax_averaged_over_positions_and_crops(crops):
    positions = {"long": 30, "short": 2, "mid": 11}
    source, model, videos, scores = run(positions, num_positions=5, crops=crops)
    # positions by hand: linspace(0, 29, 5) = 0, 7.25, 14.5, 21.75, 29 -> 0, 7, 14 (half to even), 22, 29
    used = {"long": [0, 7, 14, 22, 29], "short": [0, 1], "mid": [0, 2, 5, 8, 10]}
    for k, v in enumerate(positions):
        crops_of_video = [c for p in used[v]
                          for c in expected_crops(source.inputs[v][p], crops, is_flow=True).values()]
        probs = softmax(np.stack([c.reshape(-1).astype(np.float64) @ model.weights for c in crops_of_video]))
        np.testing.assert_allclose(scores.scores[k], probs.mean(0), rtol=1e-5, atol=1e-6,
                                   err_msg=f"video {v!r}: not the mean softmax over its "
                                           f"{len(used[v])} positions x {crops} crops")
    assert scores.scores.dtype == np.float32 and scores.scores.shape == (3, len(CLASSES))
    assert list(scores.video_ids) == list(positions) and scores.labels.tolist() == [v.label for v in videos]
    assert list(scores.classes) == CLASSES
