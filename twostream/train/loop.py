"""Train one stream: SGD with momentum, step learning-rate decay, a checkpoint every epoch.

One epoch draws ``samples_per_video`` random positions (frame or flow stack) of every training
video. Gradients of ``accumulate`` batches are summed before a step, so the effective batch is
``batch_size * accumulate * processes``. Under ``torchrun`` the model is wrapped in DDP and the
samples are split with a DistributedSampler; only the main process validates and checkpoints.
"""

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from twostream.data.splits import Video
from twostream.errors import UserError
from twostream.fingerprint import ArtefactFormat, Outdated, differences
from twostream.inputs.datasets import InputSource, RandomPositions
from twostream.models import StreamNet
from twostream.train.distributed import DistInfo, gather, reduce_sum

log = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
    """Raised in the other processes of a torchrun job when the main one stops training."""


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint to resume, test or predict with was made with other settings than the config's."""


def _checkpoint_0_to_1(state: dict[str, Any]) -> dict[str, Any]:
    """Format 0 (before checkpoints carried a version) left ``stream.trainable`` out of the settings
    when it was ``all`` and ``train.keep`` when it was ``last``: the values checkpoints made before
    those settings existed were trained and kept with."""
    if "settings" not in state:
        raise Outdated("it records no training settings (it was written before 2026-11-28)")
    settings = state["settings"]
    return state | {"settings": settings | {"stream": {"trainable": "all", **settings["stream"]},
                                            "train": {"keep": "last", **settings["train"]}}}


CHECKPOINT_FORMAT = ArtefactFormat("checkpoint", 1, upgrades={0: _checkpoint_0_to_1},
                                   fix="train again over it (stage=train train.runtime.resume=false)")


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint :func:`train_stream` wrote, in the current format: an older one goes through
    :data:`CHECKPOINT_FORMAT`'s upgrade steps; one too old, or newer than this code, is refused."""
    return CHECKPOINT_FORMAT.read(torch.load(path, map_location=map_location, weights_only=False), path)


@dataclass
class EpochStats:
    """Mean training loss and accuracy of one epoch (over all processes), and validation accuracy."""

    epoch: int
    loss: float
    accuracy: float
    lr: float
    samples_per_second: float
    val_accuracy: float | None = None

    def metrics(self) -> dict[str, float]:
        """The epoch as logged metrics: ``train/*``, and ``val/accuracy`` when validated."""
        metrics = {"epoch": self.epoch, "train/loss": self.loss, "train/accuracy": self.accuracy,
                   "train/lr": self.lr, "train/samples_per_second": self.samples_per_second}
        if self.val_accuracy is not None:
            metrics["val/accuracy"] = self.val_accuracy
        return metrics


def make_optimizer(model: nn.Module, train_cfg: Any, lr: float, epochs: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD + momentum on the parameters that train (not a frozen trunk's), the learning rate divided by
    ``lr_gamma`` at the configured epoch fractions."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=train_cfg.momentum,
                                weight_decay=train_cfg.weight_decay)
    milestones = sorted({max(1, round(f * epochs)) for f in train_cfg.lr_decay_at})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=train_cfg.lr_gamma)
    return optimizer, scheduler


def multitask_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor
                   ) -> tuple[torch.Tensor, int]:
    """Sum over the tasks in the batch of each head's cross-entropy on its own samples only.

    Returns the loss and the number of correctly classified samples. ``model`` is a
    :class:`StreamNet` or a DDP wrapper around one.
    """
    net: StreamNet = model.module if isinstance(model, DistributedDataParallel) else model
    if len(net.heads) == 1:
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), int((logits.argmax(1) == y).sum())
    loss, correct = x.new_zeros(()), 0
    for index, logits in model(x, tasks):  # through the DDP wrapper, if any: it must see every head
        loss = loss + nn.functional.cross_entropy(logits, y[index])
        correct += int((logits.argmax(1) == y[index]).sum())
    return loss, correct


def train_step(model: nn.Module, batch: Sequence[torch.Tensor], optimizer: torch.optim.Optimizer, *,
               accumulate: int, step_now: bool, autocast: contextlib.AbstractContextManager,
               scaler: torch.amp.GradScaler | None) -> tuple[float, int]:
    """Forward and backward one batch; step the optimiser when ``step_now`` (every ``accumulate`` batches).

    Returns the batch's loss and number of correct predictions.
    """
    x, y, tasks = batch
    with autocast:
        loss, correct = multitask_loss(model, x, y, tasks)
    scaled = loss / accumulate
    (scaler.scale(scaled) if scaler else scaled).backward()
    if step_now:
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), correct


def _cuda_speedups(train_cfg: Any, device: torch.device) -> tuple[contextlib.AbstractContextManager,
                                                                  torch.amp.GradScaler | None]:
    """Autocast (bf16 where supported, else fp16 with a grad scaler) on CUDA when ``train.runtime.amp``."""
    if device.type != "cuda" or not train_cfg.runtime.amp:
        return contextlib.nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def train_stream(model: StreamNet, source: InputSource, videos: list[Video], *, train_cfg: Any, lr: float,
                 epochs: int, checkpoint: Path, device: torch.device, seed: int,
                 on_epoch: Callable[[EpochStats], None], validate: Callable[[nn.Module], float] | None = None,
                 settings: Mapping[str, Any], tasks: Sequence[int] | None = None,
                 dist_info: DistInfo | None = None, progress: bool = True, keep_best: bool = False) -> StreamNet:
    """Train ``model`` on random positions of ``videos``; resume from ``checkpoint`` if asked.

    ``tasks`` gives each video's task (head) for multi-task training; ``validate`` returns an
    accuracy after each epoch (main process only). The checkpoint (model, optimiser,
    scheduler, RNG state, epoch, and the ``settings`` the model depends on) is rewritten after
    every epoch, so ``train.runtime.resume=true`` continues an interrupted run exactly where it stopped;
    a checkpoint made with other settings is refused rather than silently continued. With
    ``keep_best`` it also holds ``best``: the weights, epoch and validation accuracy of the epoch most
    accurate on validation so far (the earliest on a tie), which :func:`kept_weights` returns.
    """
    info = dist_info or DistInfo()
    torch.manual_seed(seed + info.rank)  # each process draws its own positions and crops
    channels_last = device.type == "cuda" and train_cfg.runtime.channels_last
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer, scheduler = make_optimizer(model, train_cfg, lr, epochs)
    first_epoch, best = 0, None
    if train_cfg.runtime.resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, device)
        refuse_other_settings(checkpoint, state, settings,
                              "Use another name=..., or train.runtime.resume=false to train from scratch over it.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"][info.rank])
        first_epoch, best = state["epoch"], state.get("best")
        log.info("resuming %s from epoch %d", checkpoint, first_epoch)
    data = RandomPositions(source, videos, train_cfg.crop_size, train_cfg.samples_per_video, tasks,
                           train_cfg.multiscale)
    sampler = DistributedSampler(data, info.world_size, info.rank, seed=seed) if info.enabled else None
    loader = DataLoader(data, batch_size=train_cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=train_cfg.runtime.num_workers, persistent_workers=train_cfg.runtime.num_workers > 0,
                        pin_memory=device.type == "cuda")
    # A batch may lack a task, leaving its head unused: DDP must then not wait for its gradient.
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                  find_unused_parameters=len(model.heads) > 1) if info.enabled else model
    autocast, scaler = _cuda_speedups(train_cfg, device)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(first_epoch, epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        bar = tqdm(loader, desc=f"train {checkpoint.stem} {epoch + 1}/{epochs}", leave=False,
                   disable=None if progress and info.is_main else True,  # None: off in a log file
                   dynamic_ncols=True)
        for i, (x, y, task) in enumerate(bar):
            x = x.to(device, non_blocking=True,
                     memory_format=torch.channels_last if channels_last else torch.preserve_format)
            y, task = y.to(device, non_blocking=True), task.to(device, non_blocking=True)
            step_now = (i + 1) % train_cfg.accumulate == 0 or i + 1 == len(loader)
            loss, batch_correct = train_step(net, (x, y, task), optimizer, accumulate=train_cfg.accumulate,
                                             step_now=step_now, autocast=autocast, scaler=scaler)
            total_loss += loss * len(y)
            correct += batch_correct
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.2f}")
        seconds = time.perf_counter() - start
        total_loss, correct, seen = reduce_sum([total_loss, correct, seen], info, device)
        stats = EpochStats(epoch + 1, total_loss / seen, correct / seen, optimizer.param_groups[0]["lr"],
                           seen / seconds)
        scheduler.step()
        rng_states = gather(torch.get_rng_state(), info)  # every process's, for an exact resume
        stop: BaseException | None = None
        if info.is_main:
            if validate is not None:
                stats.val_accuracy = validate(model)
            if keep_best and stats.val_accuracy is not None and (best is None or stats.val_accuracy > best["val_accuracy"]):
                best = {"epoch": epoch + 1, "val_accuracy": stats.val_accuracy,
                        "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
            torch.save(CHECKPOINT_FORMAT.stamped(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": rng_states, "epoch": epoch + 1,
                 "settings": dict(settings), **({"best": best} if keep_best else {})}), checkpoint)
            try:
                on_epoch(stats)  # may stop training, e.g. a sweep pruning this trial
            except BaseException as error:  # re-raised below, after telling the other processes
                stop = error
        # Under torchrun the other processes must stop too, or they wait for the main one forever.
        if any(gather(stop is not None, info)):
            raise stop if stop is not None else TrainingStopped("the main process stopped training")
    return model


def refuse_other_settings(checkpoint: Path, state: Mapping[str, Any], settings: Mapping[str, Any], fix: str) -> None:
    """Refuse the checkpoint's ``state`` when it was trained with other ``settings`` than asked for
    (resuming it, testing it, predicting with it), naming every difference and then ``fix``."""
    changed = differences(state["settings"], settings, "checkpoint")
    if changed:
        raise CheckpointMismatchError(f"{checkpoint} was trained with other settings than the config's:\n  "
                                      + "\n  ".join(changed) + f"\n{fix}")


def kept_weights(state: Mapping[str, Any], keep: str) -> tuple[dict[str, torch.Tensor], int]:
    """The weights a checkpoint's ``state`` keeps for testing, and their epoch: the last epoch's
    (``keep="last"``) or the best on validation (``"best_val"``, saved by ``train_stream(keep_best=True)``)."""
    if keep == "last":
        return state["model"], state["epoch"]
    if keep != "best_val":
        raise ValueError(f"train.keep must be 'last' or 'best_val', got {keep!r}")
    best = state.get("best")
    if best is None:
        raise CheckpointMismatchError("the checkpoint holds no best-on-validation weights (it was trained "
                                      "without validation, or with train.keep=last); train with train.keep=best_val")
    return best["model"], best["epoch"]
