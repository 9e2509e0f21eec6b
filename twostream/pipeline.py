"""The stages of an experiment, run in order from one config: extract -> train -> test -> fuse.

Each stage reads what earlier stages left in the cache (``cache.path``) and the run's output
folder (``paths.output_dir``), so ``stage=<name>`` reruns one stage alone. Every stage (every
stream, for train and test) is one W&B run in the experiment's group.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from twostream.cache import cache_fingerprint, open_cache, usable_lists
from twostream.cache.extract import run_extract
from twostream.cache.store import FlowCache
from twostream.checks import check_config, check_environment, stages_to_run
from twostream.data.catalog import check_lists, run_split_lists
from twostream.data.splits import SplitLists
from twostream.devices import resolve_device
from twostream.errors import shortened
from twostream.fusion.stage import run_fuse
from twostream.rundir import RunDir
from twostream.sweep.study import PRUNED_KEY, trial_reporter
from twostream.tracking import runs_note, start_run
from twostream.tracking.provenance import run_provenance
from twostream.train.distributed import DistInfo, barrier, init_distributed
from twostream.train.evaluate import TestProtocol
from twostream.train.stage import RunContext, frames_needed, run_test, run_train

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Run ``cfg.stage`` (or all stages) of the experiment; return the results of fuse if it ran.

    Under ``torchrun`` every process trains; only the main one prepares the dataset first,
    and extracts, tests, fuses and logs to W&B. A sweep trial (``cfg.trial``) reports every
    epoch to its study; if the study's pruner stops it, ``{PRUNED_KEY: why}`` is returned.
    """
    check_config(cfg)  # before anything is generated, extracted or trained
    check_environment(cfg)
    reporter = trial_reporter(cfg.get("trial"))
    try:
        return _run_stages(cfg, reporter.report if reporter is not None else None)
    except optuna.TrialPruned as pruned:
        return {PRUNED_KEY: str(pruned)}


def _run_stages(cfg: DictConfig, report_epoch: Callable[[str, int, dict[str, float]], None] | None
                ) -> dict[str, Any] | None:
    stages = stages_to_run(cfg)
    dist_info = init_distributed(cfg.train.runtime.dist_backend)
    if not dist_info.is_main:
        barrier(dist_info)  # the main process generates / checks the dataset first
    run_dir = RunDir(cfg.paths.output_dir)
    lists = run_split_lists(cfg.dataset, run_dir)
    if dist_info.is_main:
        barrier(dist_info)
    log.info("%s: %s split %d, %d classes, %d train / %d validation / %d test videos listed", cfg.name,
             cfg.dataset.name, cfg.dataset.split, len(lists.classes), len(lists.train), len(lists.val),
             len(lists.test))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    fingerprint = cache_fingerprint(cfg)
    resolved["provenance"] = run_provenance(fingerprint)  # the code's commit, the flow cache's identity
    tracking = cfg.tracking if dist_info.is_main else OmegaConf.merge(cfg.tracking, {"mode": "disabled"})
    results, context, named, runs = None, None, {}, 0
    for stage in stages:
        if stage in ("train", "test") and context is None:  # once the cache is complete, for every stream
            context = _run_context(cfg, lists, run_dir, fingerprint, dist_info, named)
        # train and test run once per stream; the W&B job type is the stage either way.
        jobs = [(f"{stage}_{s}", s) for s in cfg.streams] if stage in ("train", "test") else [(stage, None)]
        for job, stream in jobs:
            if stage != "train" and not dist_info.is_main:
                barrier(dist_info)
                continue
            start = time.perf_counter()
            with start_run(tracking, stage=job, group=cfg.name, config=resolved) as tracker:
                if stage == "extract":
                    named = run_extract(cfg, lists, tracker)
                elif stage == "train":
                    on_epoch = None if report_epoch is None else (
                        lambda stats, s=stream: report_epoch(s, stats.epoch, stats.metrics()))
                    run_train(cfg, context, stream, tracker, on_epoch)
                elif stage == "test":
                    run_test(cfg, context, stream, tracker)
                else:
                    results = run_fuse(cfg, lists, run_dir, tracker)
            if stage != "train":
                barrier(dist_info)
            log.info("stage %s done in %.1f s", job, time.perf_counter() - start)
            runs += 1
    note = runs_note(tracking, runs)
    if note:
        log.info(note)
    return results


def _run_context(cfg: DictConfig, lists: SplitLists, run_dir: RunDir, fingerprint: dict[str, Any],
                 dist_info: DistInfo, named: dict[str, str]) -> RunContext:
    """What the train and test stages of every stream share, once the cache is complete: the cache
    opened once, the usable lists, this process's device and the test protocol on it."""
    cache = open_cache(cfg)
    usable = _usable_lists(cfg, lists, cache, run_dir, warn=dist_info.is_main, named=named)
    device = resolve_device(cfg.device, local_rank=dist_info.local_rank)
    return RunContext(usable, cache, run_dir, device, TestProtocol.from_config(cfg, device, cfg.progress), fingerprint,
                      dist_info)


def _usable_lists(cfg: DictConfig, lists: SplitLists, cache: FlowCache, run_dir: RunDir, warn: bool,
                  named: dict[str, str]) -> SplitLists:
    """The lists without the videos the run cannot use, named once: here, unless the extract stage of
    this run has just named them (``named``); then the counts the stages will really use."""
    usable, left_out = usable_lists(lists, cache, frames_needed(cfg))
    if left_out and warn:
        every = {video: f"{video}: {why}" for video, why in sorted(left_out.items())}
        reasons = [line for video, line in every.items() if video not in named]
        already = len(left_out) - len(reasons)
        text = shortened(reasons, None, shown=3) + ("; and " if reasons and already else "") + (
            f"the {already} that failed extraction above" if already else "")
        listing = run_dir.left_out_videos
        shortened(list(every.values()), listing)
        log.warning("%d video(s) are left out of training and testing (all in %s): %s", len(left_out), listing, text)
        log.info("using %d train / %d validation / %d test videos", len(usable.train), len(usable.val),
                 len(usable.test))
    if left_out:  # a class may have lost every video of a set: refuse before training, not in fuse
        check_lists(usable, f"after leaving out the {len(left_out)} unusable video(s) of {run_dir.left_out_videos}",
                    cfg.dataset.get("validation"))
    return usable
