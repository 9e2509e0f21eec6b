"""Train one stream: SGD with momentum, step learning-rate decay, a checkpoint every epoch."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from twostream.data.datasets import InputSource, RandomPositions
from twostream.data.splits import Video

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    """Mean loss and accuracy of one training epoch."""

    epoch: int
    loss: float
    accuracy: float
    lr: float
    samples_per_second: float


def make_optimizer(model: nn.Module, train_cfg: Any, lr: float, epochs: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD + momentum, the learning rate divided by ``lr_gamma`` at the configured epoch fractions."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=train_cfg.momentum,
                                weight_decay=train_cfg.weight_decay)
    milestones = sorted({max(1, round(f * epochs)) for f in train_cfg.lr_decay_at})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=train_cfg.lr_gamma)
    return optimizer, scheduler


def train_stream(model: nn.Module, source: InputSource, videos: list[Video], *, train_cfg: Any, lr: float,
                 epochs: int, checkpoint: Path, device: torch.device, seed: int,
                 on_epoch: Callable[[EpochStats], None], progress: bool = True) -> nn.Module:
    """Train ``model`` on random positions of ``videos``; resume from ``checkpoint`` if asked.

    The checkpoint (model, optimiser, scheduler, RNG state, epoch) is rewritten after every
    epoch, so ``train.resume=true`` continues an interrupted run where it stopped.
    """
    torch.manual_seed(seed)
    model.to(device)
    optimizer, scheduler = make_optimizer(model, train_cfg, lr, epochs)
    first_epoch = 0
    if train_cfg.resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        first_epoch = state["epoch"]
        log.info("resuming %s from epoch %d", checkpoint, first_epoch)
    data = RandomPositions(source, videos, train_cfg.crop_size, train_cfg.samples_per_video)
    loader = DataLoader(data, batch_size=train_cfg.batch_size, shuffle=True, drop_last=False,
                        num_workers=train_cfg.num_workers, persistent_workers=train_cfg.num_workers > 0)
    loss_fn = nn.CrossEntropyLoss()
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(first_epoch, epochs):
        model.train()
        total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        bar = tqdm(loader, desc=f"train {checkpoint.stem} {epoch + 1}/{epochs}", leave=False,
                   disable=not progress, dynamic_ncols=True)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.2f}")
        stats = EpochStats(epoch + 1, total_loss / seen, correct / seen, optimizer.param_groups[0]["lr"],
                           seen / (time.perf_counter() - start))
        scheduler.step()
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch + 1},
                   checkpoint)
        on_epoch(stats)
    return model
