"""What training reports every epoch: the learning rate the optimiser steps with, and the accuracy and loss
of the samples it saw, against the paper's schedule and a model with known predictions."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from twostream.cache.store import FlowCache
from twostream.data.splits import Video
from twostream.flow import quantize
from twostream.inputs.datasets import FlowStackSource
from twostream.train.loop import train_stream

NUM_CLASSES, BOUND = 3, 20.0
LABELS = [0, 1, 2, 0, 1, 2]  # one per video
# The stub model's prediction for video k; right for videos 0, 1, 3 and 5: 4 of 6.
PREDICTED = [0, 1, 0, 0, 2, 2]
CONFIDENCE = 3.0  # the predicted class's logit; the others' are 0


def train_cfg(**overrides):
    return OmegaConf.create({"batch_size": 4, "momentum": 0.9, "weight_decay": 5e-4, "lr_decay_at": [0.5],
                             "lr_gamma": 0.1, "crop_size": 8, "samples_per_video": 1, "accumulate": 1,
                             "multiscale": None,
                             "runtime": {"num_workers": 0, "resume": False, "amp": False, "channels_last": False}}
                            | overrides)


@pytest.fixture
def source(tmp_path) -> FlowStackSource:
    """Six videos whose flow is uniform: video k moves k px down (y) and 1 px right (x)."""
    cache = FlowCache(tmp_path / "c.zarr", {"bound": BOUND}, writable=True)
    for k in range(len(LABELS)):
        flow = np.zeros((4, 2, 10, 12), np.float32)
        flow[:, 0], flow[:, 1] = 1.0, float(k)
        cache.write_video(f"v{k}", np.zeros((5, 10, 12, 3), np.uint8), quantize(flow, BOUND),
                          source={"size": k, "mtime_ns": 0})
    return FlowStackSource(FlowCache(tmp_path / "c.zarr", {"bound": BOUND}), L=2, stacking="optical_flow",
                           bidirectional=False, mean_subtraction=False)


VIDEOS = [Video(f"v{k}", Path(f"v{k}.avi"), label, None) for k, label in enumerate(LABELS)]


class KnownPredictions(nn.Module):
    """Predicts PREDICTED[k] for a stack of video k (read from its y flow, which flips and crops keep)."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(1, NUM_CLASSES)])  # one task; its output is added at 0 weight
        nn.init.zeros_(self.heads[0].weight)
        nn.init.zeros_(self.heads[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        video = x[:, 1::2].mean(dim=(1, 2, 3)).round().long()
        logits = CONFIDENCE * nn.functional.one_hot(torch.tensor(PREDICTED)[video], NUM_CLASSES).float()
        return logits + self.heads[0](x[:, :1, 0, 0])  # joins the graph, so there is something to step


def train(source, cfg, *, lr: float, epochs: int, tmp_path) -> list[tuple[dict[str, float], list[float]]]:
    """Train the stub; per epoch, the metrics the train stage logs and the lr of each optimiser step."""
    epochs_seen, steps = [], []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: steps.append(optimizer.param_groups[0]["lr"]))

    def on_epoch(stats):
        epochs_seen.append((stats.metrics(), list(steps)))
        steps.clear()

    try:
        train_stream(KnownPredictions(), source, VIDEOS, train_cfg=cfg, lr=lr, epochs=epochs,
                     checkpoint=tmp_path / "stub.pt", device=torch.device("cpu"), seed=0, on_epoch=on_epoch,
                     settings={}, progress=False)
    finally:
        hook.remove()
    return epochs_seen


# (epochs, lr_decay_at, lr_gamma) -> the lr of each epoch, worked out by hand
SCHEDULES = {
    # the paper: 1e-2, divided by 10 after 50K and 70K of 80K steps (5 and 7 of 8 epochs)
    "paper": ((8, [0.625, 0.875], 0.1), [1e-2] * 5 + [1e-3] * 2 + [1e-4]),
    # conf/train/default.yaml's fractions over 6 epochs: decays after epochs 3 and round(4.8) = 5
    "default": ((6, [0.5, 0.8], 0.1), [1e-2] * 3 + [1e-3] * 2 + [1e-4]),
    "halving": ((4, [0.25, 0.5, 0.75], 0.5), [1e-2, 5e-3, 2.5e-3, 1.25e-3]),
}


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_every_epoch_steps_with_the_step_decayed_learning_rate_and_logs_it(source, tmp_path, schedule):
    (epochs, decay_at, gamma), expected = SCHEDULES[schedule]
    logged = train(source, train_cfg(lr_decay_at=decay_at, lr_gamma=gamma), lr=1e-2, epochs=epochs,
                   tmp_path=tmp_path)
    stepped = [steps for _, steps in logged]
    assert all(len(s) == 2 for s in stepped), "6 samples in batches of 4: two optimiser steps per epoch"
    per_epoch = [s[0] for s in stepped]
    assert per_epoch == pytest.approx(expected, rel=1e-9), \
        f"lr the optimiser stepped with, per epoch: {per_epoch}, expected {expected}"
    assert all(s == [s[0]] * len(s) for s in stepped), f"lr changed within an epoch: {stepped}"
    assert [m["train/lr"] for m, _ in logged] == pytest.approx(expected, rel=1e-9), \
        "the logged train/lr is not the lr the epoch was trained with"


def test_logged_training_accuracy_and_loss_are_those_of_the_known_predictions(source, tmp_path):
    # 6 videos x 3 samples in batches of 4 (the last one of 2): accuracy and loss are per sample.
    logged = train(source, train_cfg(samples_per_video=3), lr=0.0, epochs=2, tmp_path=tmp_path)
    right = [p == y for p, y in zip(PREDICTED, LABELS, strict=True)]
    accuracy = sum(right) / len(right)
    normaliser = math.log(math.exp(CONFIDENCE) + NUM_CLASSES - 1)  # cross-entropy: -log softmax
    loss = np.mean([normaliser - CONFIDENCE if r else normaliser for r in right])
    for epoch, (metrics, _) in enumerate(logged, start=1):
        assert metrics["epoch"] == epoch
        assert metrics["train/accuracy"] == pytest.approx(accuracy), \
            f"epoch {epoch}: logged training accuracy {metrics['train/accuracy']}, the predictions' is {accuracy}"
        assert metrics["train/loss"] == pytest.approx(loss, rel=1e-5), f"epoch {epoch}: logged loss"
        assert "val/accuracy" not in metrics  # no validation asked for
