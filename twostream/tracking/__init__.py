"""Weights & Biases tracking: one W&B run per pipeline stage.

Every stage (extract, train_spatial, train_temporal, test, fuse, report) opens one run with
`start_run`. The mode comes from the `tracking` config node only:

- ``offline`` (default): everything goes to ``<dir>/wandb/offline-run-*/run-<id>.wandb``; no network.
  Upload later with ``wandb sync <run folder>``.
- ``online``: streams to the W&B server (needs an API key and network).
- ``disabled``: wandb is never initialised and nothing is written to disk.

A :class:`Tracker` is the pipeline's :class:`~twostream.runlog.RunLog`: the stages log through it
without knowing it is W&B.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import wandb
from omegaconf import DictConfig, OmegaConf

from twostream.rundir import RunDir
from twostream.runlog import TRACKING_MODES

__all__ = ["Tracker", "runs_note", "start_run"]

_RUN_ID_ALPHABET = string.ascii_lowercase + string.digits


class Tracker:
    """Handle on one stage's W&B run; every method is a no-op when tracking is disabled."""

    def __init__(self, run: wandb.Run | None) -> None:
        self._run = run
        self.run_dir: Path | None = Path(run.settings.sync_dir) if run is not None else None

    @property
    def enabled(self) -> bool:
        """False when tracking is disabled: then every method is a no-op, and callers can skip the
        work of preparing what they would log."""
        return self._run is not None

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log one history row; `step` must not decrease (wandb drops older steps with a warning)."""
        if self._run is not None:
            self._run.log(dict(metrics), step=step)

    def set_summary(self, metrics: Mapping[str, Any]) -> None:
        """Set final values in the run summary (overriding the last logged history values)."""
        if self._run is not None:
            self._run.summary.update(dict(metrics))

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Put a table under ``key`` in the run summary (the web UI makes a table panel of it).

        Not in the history: there, each table's row and column counts are numbers that ``wandb leet``
        draws as one-point charts.
        """
        if self._run is not None:
            self._run.summary[key] = wandb.Table(columns=columns, data=rows)

    def log_images(self, key: str, images: Sequence[np.ndarray], captions: Sequence[str]) -> None:
        """Log RGB uint8 images (H, W, 3), each as one ``wandb.Image`` at its own size with its caption:
        under ``key`` when there is one, under ``key/0``, ``key/1``... when there are several
        (``wandb leet``'s media pane shows single images, not lists)."""
        if self._run is not None:
            keys = [key] if len(images) == 1 else [f"{key}/{i}" for i in range(len(images))]
            self._run.log({k: wandb.Image(image, caption=caption)
                           for k, image, caption in zip(keys, images, captions, strict=True)})

    def log_artifact(self, paths: str | Path | Sequence[str | Path], name: str, type: str) -> None:
        """Log files and directories as one W&B artifact called `name` of the given `type`."""
        if self._run is None:
            return
        artifact = wandb.Artifact(name, type=type)
        for path in [paths] if isinstance(paths, str | Path) else paths:
            path = Path(path)
            # "immutable": reference the files in place instead of copying them into wandb's staging
            # area in the user's home; our outputs are not rewritten after being logged.
            if path.is_dir():
                artifact.add_dir(str(path), policy="immutable")
            elif path.is_file():
                artifact.add_file(str(path), policy="immutable")
            else:
                raise FileNotFoundError(f"artifact path does not exist: {path}")
        self._run.log_artifact(artifact)

    def finish(self, exit_code: int | None = None) -> None:
        """Finish the run (a non-zero `exit_code` marks it failed); calling it twice is harmless.

        wandb-core completes the offline run's file in the background, shortly after this returns.
        """
        if self._run is not None:
            self._run.finish(exit_code=exit_code)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def start_run(
    tracking_cfg: Mapping[str, Any], *, stage: str, group: str, config: Mapping[str, Any]
) -> Tracker:
    """Start one W&B run for a pipeline stage.

    Args:
        tracking_cfg: the `tracking` config node (DictConfig or dict) with keys `mode`
            (offline | online | disabled), `project`, `entity` (optional) and `dir` (wandb writes
            into `<dir>/wandb/`).
        stage: the stage name, used as the run's job_type.
        group: the experiment name, used as the run's group; the run is named f"{group}-{stage}".
        config: the whole resolved config (nested dicts and lists are kept).

    Returns:
        A `Tracker`, usable as a context manager that finishes the run (exit code 1 on exception).
    """
    mode = tracking_cfg["mode"]
    if mode not in TRACKING_MODES:
        raise ValueError(f"tracking.mode must be one of {TRACKING_MODES}, got {mode!r}")
    if mode == "disabled":
        return Tracker(None)

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    run_root = Path(tracking_cfg["dir"])
    run_root.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(
        mode=mode,
        # Offline, wandb prints three lines per run (sync mode, run folder, a `wandb leet` hint that
        # fails from the repo root) whatever `quiet` says; the pipeline says once where its runs are.
        silent=True,
        console="off",  # no stdout/stderr capture: Hydra already logs to a file, and pytest stays clean
        x_disable_stats=True,  # no system-metrics sampler process
    )
    run = wandb.init(
        project=tracking_cfg["project"],
        entity=tracking_cfg.get("entity"),
        dir=str(run_root),
        # An explicit fresh id, so that a WANDB_RUN_ID left in the environment cannot make all
        # stages write into one run.
        id="".join(secrets.choice(_RUN_ID_ALPHABET) for _ in range(8)),
        name=f"{group}-{stage}",
        group=group,
        job_type=stage,
        config=dict(config),
        # Never hand back an unfinished earlier run (wandb's default outside notebooks).
        reinit="create_new",
        settings=settings,
    )
    return Tracker(run)


def runs_note(tracking_cfg: Mapping[str, Any], count: int) -> str | None:
    """The one line that tells where an experiment's ``count`` W&B runs went (wandb itself is kept
    silent: offline it prints three lines per run); None when tracking is disabled or nothing ran."""
    if tracking_cfg["mode"] == "disabled" or count == 0:
        return None
    if tracking_cfg["mode"] == "offline":
        folder = RunDir(Path(tracking_cfg["dir"]).absolute()).wandb
        if folder.is_relative_to(Path.cwd()):  # as the user would type it from here
            folder = folder.relative_to(Path.cwd())
        return (f"W&B: {count} offline run(s) in {folder}; browse them with `wandb leet {folder}`, "
                f"upload them with `wandb sync {folder}/offline-run-*`")
    return f"W&B: {count} run(s) logged to project {tracking_cfg['project']}"
