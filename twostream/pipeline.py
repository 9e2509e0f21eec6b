"""The stages of an experiment, run in order from one config: extract -> train -> test -> fuse.

Each stage reads what earlier stages left in the cache (``cache.path``) and the run's output
folder (``paths.output_dir``), so ``stage=<name>`` reruns one stage alone. Every stage (every
stream, for train and test) is one W&B run in the experiment's group.
"""

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from twostream.cache.extract import extract_videos
from twostream.cache.store import FlowCache
from twostream.data.catalog import load_split_lists
from twostream.data.datasets import FlowStackSource, FrameSource, InputSource
from twostream.data.splits import SplitLists, Video
from twostream.flow import get_estimator
from twostream.fusion import average_fusion, fit_svm_fusion
from twostream.models import build_model
from twostream.report import format_markdown, write_results
from twostream.tracking import Tracker, start_run
from twostream.train.evaluate import Scores, score_videos
from twostream.train.loop import EpochStats, train_stream

log = logging.getLogger(__name__)

STAGES = ("extract", "train", "test", "fuse")


class StageError(RuntimeError):
    """A stage cannot run; the message says what is missing and how to fix it."""


def cache_fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """The settings a cached video depends on; a cache made with others is refused."""
    return {"estimator": cfg.flow.name, "params": OmegaConf.to_container(cfg.flow.params, resolve=True),
            "bound": cfg.cache.bound, "short_side": cfg.dataset.short_side}


def open_cache(cfg: DictConfig, writable: bool = False) -> FlowCache:
    return FlowCache(cfg.cache.path, cache_fingerprint(cfg), writable=writable,
                     rebuild=writable and cfg.cache.rebuild, compression_level=cfg.cache.compression_level,
                     in_memory=not writable and cfg.cache.in_memory)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def input_source(stream_cfg: DictConfig, cache: FlowCache) -> InputSource:
    if stream_cfg.input == "rgb":
        return FrameSource(cache)
    if stream_cfg.input == "flow":
        return FlowStackSource(cache, stream_cfg.L, stream_cfg.stacking, stream_cfg.mean_subtraction)
    raise ValueError(f"stream input must be 'rgb' or 'flow', got {stream_cfg.input!r}")


def cached(videos: list[Video], cache: FlowCache, what: str) -> list[Video]:
    """The videos that the cache holds; the others (failed extraction) are named in the log."""
    available = set(cache.video_ids())
    kept = [v for v in videos if v.id in available]
    if len(kept) < len(videos):
        dropped = [v.id for v in videos if v.id not in available]
        log.warning("%d %s video(s) are not in the cache and are left out: %s", len(dropped), what,
                    ", ".join(dropped))
    if not kept:
        raise StageError(f"none of the {what} videos is in the cache {cache.path}; run stage=extract first")
    return kept


def stream_model(cfg: DictConfig, stream_cfg: DictConfig, source: InputSource, num_classes: int
                 ) -> torch.nn.Module:
    return build_model(cfg.model, in_channels=source.in_channels, num_classes=num_classes,
                       input_size=cfg.train.crop_size, dropout=stream_cfg.dropout, is_flow=source.is_flow)


def checkpoint_path(cfg: DictConfig, stream: str) -> Path:
    return Path(cfg.paths.output_dir) / "checkpoints" / f"{stream}.pt"


def scores_path(cfg: DictConfig, stream: str, subset: str) -> Path:
    return Path(cfg.paths.output_dir) / "scores" / f"{stream}_{subset}.npz"


# -- stages ---------------------------------------------------------------------------------
def run_extract(cfg: DictConfig, lists: SplitLists, tracker: Tracker) -> None:
    cache = open_cache(cfg, writable=True)
    estimator = get_estimator(cfg.flow.name, **cfg.flow.params)
    summary = extract_videos(lists.train + lists.test, cache, estimator, short_side=cfg.dataset.short_side,
                             batch_size=cfg.flow.batch_size, flows_per_chunk=cfg.cache.flows_per_chunk,
                             progress=cfg.progress)
    failures = cache.failures()
    log.info("extract: %d extracted, %d already cached, %d failed; %.0f flow pairs/s -> %s",
             summary.extracted, summary.skipped, len(failures), summary.pairs_per_second, cache.path)
    for video_id, reason in failures.items():
        log.warning("failed: %s: %s", video_id, reason)
    tracker.set_summary({"videos_extracted": summary.extracted, "videos_skipped": summary.skipped,
                         "videos_failed": len(failures), "pairs_per_second": summary.pairs_per_second})
    if failures:
        tracker.log_table("failures", ["video", "reason"], [[k, v] for k, v in failures.items()])
        if cfg.strict:
            raise StageError(f"{len(failures)} video(s) failed extraction (strict=true); see the log")


def run_train(cfg: DictConfig, lists: SplitLists, stream: str, tracker: Tracker) -> None:
    stream_cfg = cfg.streams[stream]
    cache = open_cache(cfg)
    source = input_source(stream_cfg, cache)
    model = stream_model(cfg, stream_cfg, source, len(lists.classes))

    def on_epoch(stats: EpochStats) -> None:
        log.info("%s epoch %d: loss %.3f, train accuracy %.3f, lr %.2g, %.0f samples/s", stream, stats.epoch,
                 stats.loss, stats.accuracy, stats.lr, stats.samples_per_second)
        tracker.log({"epoch": stats.epoch, "train/loss": stats.loss, "train/accuracy": stats.accuracy,
                     "train/lr": stats.lr, "train/samples_per_second": stats.samples_per_second})

    train_stream(model, source, cached(lists.train, cache, "training"), train_cfg=cfg.train,
                 lr=stream_cfg.lr, epochs=stream_cfg.epochs, checkpoint=checkpoint_path(cfg, stream),
                 device=resolve_device(cfg.device), seed=cfg.seed, on_epoch=on_epoch, progress=cfg.progress)


def run_test(cfg: DictConfig, lists: SplitLists, stream: str, tracker: Tracker) -> None:
    stream_cfg = cfg.streams[stream]
    cache = open_cache(cfg)
    source = input_source(stream_cfg, cache)
    model = stream_model(cfg, stream_cfg, source, len(lists.classes))
    checkpoint = checkpoint_path(cfg, stream)
    if not checkpoint.is_file():
        raise StageError(f"{checkpoint}: no trained {stream} model; run stage=train first")
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["model"])
    for subset, videos in (("train", lists.train), ("test", lists.test)):
        scores = score_videos(model, source, cached(videos, cache, subset), lists.classes,
                              num_positions=cfg.test.num_positions, crops=cfg.test.crops,
                              crop_size=cfg.train.crop_size, batch_size=cfg.test.batch_size,
                              device=resolve_device(cfg.device), progress=cfg.progress)
        scores.save(scores_path(cfg, stream, subset))
        log.info("%s %s accuracy: %.3f (%d videos)", stream, subset, scores.accuracy, len(scores.labels))
        tracker.set_summary({f"{subset}/accuracy": scores.accuracy})


def run_fuse(cfg: DictConfig, lists: SplitLists, tracker: Tracker) -> dict[str, Any]:
    streams = list(cfg.streams)
    train = [Scores.load(scores_path(cfg, s, "train")) for s in streams]
    test = [Scores.load(scores_path(cfg, s, "test")) for s in streams]
    for subset in (train, test):
        if any(list(sc.video_ids) != list(subset[0].video_ids) for sc in subset[1:]):
            raise StageError("the streams' score files list different videos; rerun stage=test for all streams")
    labels = test[0].labels
    accuracy = {s: sc.accuracy for s, sc in zip(streams, test, strict=True)}
    fused = average_fusion([sc.scores for sc in test])
    accuracy["fusion_average"] = float((fused.argmax(1) == labels).mean())
    svm = fit_svm_fusion([sc.scores for sc in train], train[0].labels, C_grid=list(cfg.fusion.svm.C_grid),
                         cv_folds=cfg.fusion.svm.cv_folds, max_iter=cfg.fusion.svm.max_iter, seed=cfg.seed)
    accuracy["fusion_svm"] = float((svm.decision([sc.scores for sc in test]).argmax(1) == labels).mean())
    results = {"experiment": cfg.name, "dataset": cfg.dataset.name, "split": cfg.dataset.split,
               "num_classes": len(lists.classes), "num_test_videos": len(labels),
               "chance": 1.0 / len(lists.classes), "svm_C": svm.C, "accuracy": accuracy}
    json_path, _ = write_results(results, Path(cfg.paths.output_dir))
    print(format_markdown(results))
    tracker.set_summary({f"accuracy/{k}": v for k, v in accuracy.items()} | {"chance": results["chance"]})
    tracker.log_table("results", ["method", "accuracy"], [[k, v] for k, v in accuracy.items()])
    tracker.log_artifact(json_path, name=f"{cfg.name}-results", type="results")
    return results


# -- driver ---------------------------------------------------------------------------------
def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Run ``cfg.stage`` (or all stages) of the experiment; return the results of fuse if it ran."""
    if cfg.stage != "all" and cfg.stage not in STAGES:
        raise StageError(f"stage={cfg.stage!r} is not one of: all, {', '.join(STAGES)}")
    stages = STAGES if cfg.stage == "all" else (cfg.stage,)
    lists = load_split_lists(cfg.dataset)
    log.info("%s: %s split %d, %d classes, %d train / %d test videos", cfg.name, cfg.dataset.name,
             cfg.dataset.split, len(lists.classes), len(lists.train), len(lists.test))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    results = None
    for stage in stages:
        # train and test run once per stream; the W&B job type is the stage either way.
        jobs = [(f"{stage}_{s}", s) for s in cfg.streams] if stage in ("train", "test") else [(stage, None)]
        for job, stream in jobs:
            start = time.perf_counter()
            with start_run(cfg.tracking, stage=job, group=cfg.name, config=resolved) as tracker:
                if stage == "extract":
                    run_extract(cfg, lists, tracker)
                elif stage == "train":
                    run_train(cfg, lists, stream, tracker)
                elif stage == "test":
                    run_test(cfg, lists, stream, tracker)
                else:
                    results = run_fuse(cfg, lists, tracker)
            log.info("stage %s done in %.1f s", job, time.perf_counter() - start)
    return results
