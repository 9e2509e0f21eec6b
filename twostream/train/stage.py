"""The train and test stages of one stream, as the pipeline runs them from the config and the run's
:class:`RunContext`.

They read the config's ``streams``, ``model``, ``train``, ``dataset`` (which videos trained the
weights), ``seed``, ``progress``, and for the artefacts they log ``name`` and ``tracking.log_checkpoints``;
what the whole run shares (the opened cache, the usable lists,
the run folder, the device, the test protocol) comes in the context, built once by the pipeline.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig

from twostream.cache.store import FlowCache
from twostream.data.catalog import scored_classes, scored_train, task_lists, training_videos
from twostream.data.splits import SplitLists
from twostream.errors import StageError
from twostream.fingerprint import counted
from twostream.inputs.datasets import FlowStackSource, FrameSource, InputSource
from twostream.models import StreamNet, build_model
from twostream.rundir import RunDir
from twostream.runlog import RunLog
from twostream.train.distributed import DistInfo
from twostream.train.evaluate import TestProtocol
from twostream.train.loop import (
    EpochStats,
    kept_weights,
    load_checkpoint,
    refuse_other_settings,
    train_stream,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What the train and test stages of every stream share, built once per run by the pipeline.

    ``lists`` holds only the videos the run can use (:func:`twostream.cache.usable_lists`),
    ``cache`` is the flow cache opened for reading, ``protocol`` the test protocol on ``device``,
    ``flow_fingerprint`` the cache's settings (part of what trained weights depend on).
    """

    lists: SplitLists
    cache: FlowCache
    run_dir: RunDir
    device: torch.device
    protocol: TestProtocol
    flow_fingerprint: dict[str, Any]
    dist_info: DistInfo = field(default_factory=DistInfo)


def input_source(stream_cfg: DictConfig, cache: FlowCache) -> InputSource:
    """The stream's input (RGB frames or flow stacks) read from the cache."""
    if stream_cfg.input == "rgb":
        return FrameSource(cache)
    if stream_cfg.input == "flow":
        return FlowStackSource(cache, stream_cfg.L, stream_cfg.stacking, stream_cfg.bidirectional,
                               stream_cfg.mean_subtraction)
    raise ValueError(f"stream input must be 'rgb' or 'flow', got {stream_cfg.input!r}")


def stream_model(cfg: DictConfig, stream_cfg: DictConfig, source: InputSource,
                 classes_per_task: Sequence[int]) -> StreamNet:
    """The stream's network, sized for its input channels and the training crop; one head per task
    (the only part that trains with ``trainable: last``)."""
    model = build_model(cfg.model, in_channels=source.in_channels, classes_per_task=classes_per_task,
                        input_size=cfg.train.crop_size, dropout=stream_cfg.dropout, is_flow=source.is_flow)
    if stream_cfg.trainable == "last":
        model.freeze_trunk()
    return model


def stream_parts(cfg: DictConfig, cache: FlowCache, lists: SplitLists, stream: str
                 ) -> tuple[DictConfig, InputSource, StreamNet]:
    """What both the train and the test stage of a stream start from: its config, its input
    source (reading ``cache``) and a freshly built network with a head per task of ``lists``."""
    stream_cfg = cfg.streams[stream]
    source = input_source(stream_cfg, cache)
    # The initial weights depend on the seed alone, not on what ran before in this process
    # (the other stream, an earlier sweep trial).
    torch.manual_seed(cfg.seed)
    return stream_cfg, source, stream_model(cfg, stream_cfg, source,
                                            [len(task.classes) for task in task_lists(lists)])


def training_settings(cfg: DictConfig, stream: str, flow_fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What a stream's trained weights depend on, counted by :func:`twostream.fingerprint.counted`'s
    rule (so ``train.runtime`` does not count), with the flow cache's ``flow_fingerprint``: resuming or
    testing with other values is refused."""
    return counted(cfg, {"stream": f"streams.{stream}", "model": "model", "train": "train",
                         # the dataset's videos, and which training videos were held out for validation
                         "dataset": {key: f"dataset.{key}" for key in ("name", "split", "root", "validation")},
                         "seed": "seed"}) | {"flow": flow_fingerprint}


def frames_needed(cfg: DictConfig) -> int:
    """The fewest frames a video needs for every stream of the run: L+1 for a flow stack, 1 for RGB."""
    return max(stream.L + 1 if stream.input == "flow" else 1 for stream in cfg.streams.values())


def run_train(cfg: DictConfig, context: RunContext, stream: str, run_log: RunLog,
              on_epoch: Callable[[EpochStats], None] | None = None) -> None:
    """The train stage of one stream, on the context's training videos (all processes under torchrun).

    Every epoch is logged to ``run_log``, then handed to ``on_epoch`` (which may stop training by
    raising, as a sweep's pruner does); at the end, the checkpoint as an artefact
    (``tracking.log_checkpoints``).
    """
    lists = context.lists
    stream_cfg, source, model = stream_parts(cfg, context.cache, lists, stream)
    val_videos = lists.val if cfg.train.runtime.validate else []
    # The validation videos (held out of training; never the test videos), cheaply.
    validation = context.protocol.validation(cfg.train.runtime.val_positions)

    def validate(net: torch.nn.Module) -> float:
        return validation.score(net, source, val_videos, scored_classes(lists)).accuracy

    def epoch_done(stats: EpochStats) -> None:
        log.info("%s epoch %d: loss %.3f, train accuracy %.3f%s, lr %.2g, %.0f samples/s", stream, stats.epoch,
                 stats.loss, stats.accuracy,
                 "" if stats.val_accuracy is None else f", validation accuracy {stats.val_accuracy:.3f}",
                 stats.lr, stats.samples_per_second)
        run_log.log(stats.metrics())
        if on_epoch is not None:
            on_epoch(stats)

    videos, tasks = training_videos(lists)
    train_stream(model, source, videos, train_cfg=cfg.train, tasks=tasks,
                 lr=stream_cfg.lr, epochs=stream_cfg.epochs, checkpoint=context.run_dir.checkpoint(stream),
                 device=context.device, seed=cfg.seed, on_epoch=epoch_done, validate=validate if val_videos else None,
                 settings=training_settings(cfg, stream, context.flow_fingerprint), dist_info=context.dist_info,
                 progress=cfg.progress,
                 keep_best=cfg.train.keep == "best_val")
    if cfg.tracking.log_checkpoints:
        run_log.log_artifact(context.run_dir.checkpoint(stream), name=f"{cfg.name}-{stream}-checkpoint", type="model")


def trained_state(cfg: DictConfig, stream: str, run_dir: RunDir, flow_fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The stream's checkpoint in ``run_dir``, refused when it is missing or was trained with other
    settings than ``cfg``'s (and ``flow_fingerprint``); one that stopped early is taken with a warning.
    ``model`` holds the weights ``train.keep`` says (the last epoch's, or the best on validation),
    ``kept_epoch`` their epoch."""
    checkpoint = run_dir.checkpoint(stream)
    if not checkpoint.is_file():
        raise StageError(f"{checkpoint}: no trained {stream} model; run stage=train first")
    state = load_checkpoint(checkpoint)
    refuse_other_settings(checkpoint, state, training_settings(cfg, stream, flow_fingerprint),
                          "Run stage=train with these settings first.")
    if state["epoch"] < cfg.streams[stream].epochs:
        log.warning("%s was trained for %d of %d epochs (interrupted?); testing it as it is",
                    checkpoint, state["epoch"], cfg.streams[stream].epochs)
    weights, epoch = kept_weights(state, cfg.train.keep)
    if cfg.train.keep == "best_val":
        log.info("%s: keeping epoch %d of %d, the most accurate on validation (%.3f)", stream, epoch,
                 state["epoch"], state["best"]["val_accuracy"])
    return state | {"model": weights, "kept_epoch": epoch}


def run_test(cfg: DictConfig, context: RunContext, stream: str, run_log: RunLog) -> None:
    """The test stage of one stream: score files for the context's train, validation (if any) and
    test videos, scored with its test protocol; the train and test ones are logged to ``run_log`` as
    one artefact."""
    lists = context.lists
    _, source, model = stream_parts(cfg, context.cache, lists, stream)
    state = trained_state(cfg, stream, context.run_dir, context.flow_fingerprint)
    model.load_state_dict(state["model"])
    run_log.set_summary({"train_keep": cfg.train.keep, "kept_epoch": state["kept_epoch"]})
    for subset, videos in (("train", scored_train(lists)), ("val", lists.val), ("test", lists.test)):
        if not videos:  # a run without a validation split
            continue
        scores = context.protocol.score(model, source, videos, scored_classes(lists))
        scores.save(context.run_dir.scores(stream, subset))
        log.info("%s %s accuracy: %.3f (%d videos)", stream, subset, scores.accuracy, len(scores.labels))
        run_log.set_summary({f"{subset}/accuracy": scores.accuracy})
    run_log.log_artifact([context.run_dir.scores(stream, subset) for subset in ("train", "test")],
                         name=f"{cfg.name}-{stream}-scores", type="scores")
