"""A sweep job that costs nothing, for testing the real sweeper (``hydra/sweeper=optuna``) end to end.

``python tests/sweep_stub.py -m +experiment=sweep_temporal ...`` composes twostream's config and
runs the Optuna sweeper exactly as ``python -m twostream -m ...`` does, but each trial only writes
``<STUB_LOG>/<trial>.started`` (its pid), sleeps ``STUB_SECONDS`` and returns an objective computed
from its parameters. The first trial to create ``<STUB_LOG>/hang`` (when ``STUB_HANG=1``) sleeps
for ten minutes instead: a test kills its worker there, mid-trial.
"""

import os
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from twostream.configs import config_dir
from twostream.sweep import enable_hydra_plugin

enable_hydra_plugin()


def stub_objective(cfg: DictConfig) -> float:
    """A number that depends on the searched parameters only (tests recompute it)."""
    return cfg.streams.temporal.L + cfg.streams.temporal.dropout


def _hangs(log_dir: Path, number: int) -> bool:
    if os.environ.get("STUB_HANG") != "1":
        return False
    try:
        fd = os.open(log_dir / "hang", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, f"{number} {os.getpid()}".encode())
    os.close(fd)
    return True


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def task(cfg: DictConfig) -> dict[str, Any]:
    log_dir = Path(os.environ["STUB_LOG"])
    number = cfg.trial.number
    (log_dir / f"{number}.started").write_text(str(os.getpid()))
    time.sleep(600 if _hangs(log_dir, number) else float(os.environ.get("STUB_SECONDS", "0")))
    if os.environ.get("STUB_FAIL") == "1":
        raise RuntimeError(f"trial {number} failed on purpose")
    return {"val_accuracy": {"temporal": stub_objective(cfg)}}


if __name__ == "__main__":
    task()
