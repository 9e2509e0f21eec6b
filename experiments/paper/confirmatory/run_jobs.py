"""Run one experiment's multirun jobs, a few at a time, skipping those already finished.

``python -m twostream -m +experiment=NAME`` runs its jobs one after the other and, run again after
an interruption, redoes every finished job's test and fuse stages. A confirmatory study is resumed
several times, on a machine with cores to spare, so this runs the same jobs (Hydra's basic sweeper's
list, in its order, each in the folder the multirun gives it: multirun/NAME/<subdir>) as single runs,
``--workers`` at once, and leaves out every job whose folder already has its results.json. A job
left half-done resumes from its last epoch's checkpoint (``train.runtime.resume``). Each job is
single-threaded (``OMP_NUM_THREADS=1``), so running several at once does not change its numbers.

    python experiments/paper/confirmatory/run_jobs.py confirm_table2 --workers 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from twostream.configs import config_dir


def sweep_jobs(experiment: str) -> Iterator[tuple[Path, list[str]]]:
    """Each job of ``-m +experiment=experiment``: the folder the multirun gives it and its overrides,
    in the basic sweeper's order (its params first, the command line's last, the last key fastest)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        command_line = [f"+experiment={experiment}"]
        base = compose("config", overrides=command_line, return_hydra_config=True)
        params = [f"{key}={value}" for key, value in base.hydra.sweeper.params.items()]
        parsed = OverridesParser.create().parse_overrides(params + command_line)
        (jobs,) = BasicSweeper.split_arguments(parsed, None)  # one batch: every job
        numbered = OmegaConf.to_container(base.hydra.sweep)["subdir"] == "${hydra.job.num}"
        for number, overrides in enumerate(jobs):
            if numbered:  # the default subdir: the job's number, no need to compose the job (~0.2 s)
                yield Path(base.hydra.sweep.dir) / str(number), list(overrides)
                continue
            job = compose("config", overrides=list(overrides), return_hydra_config=True)
            with open_dict(job):
                job.hydra.job.num = number
            yield Path(job.hydra.sweep.dir) / str(job.hydra.sweep.subdir), list(overrides)


_PRINTING = threading.Lock()


def say(line: str) -> None:
    """One line of the study's log, whole even when several workers finish at once."""
    with _PRINTING:
        sys.stdout.write(f"== {time.strftime('%FT%TZ', time.gmtime())} {line}\n")
        sys.stdout.flush()


def run_job(folder: Path, overrides: list[str]) -> int:
    """One job as a single run in its multirun folder; its output goes to folder/run.log."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "twostream", *overrides, f"hydra.run.dir={folder}"]
    started = time.monotonic()
    say(f"start {folder}: {' '.join(overrides)}")
    with open(folder / "run.log", "a") as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    outcome = "done" if returncode == 0 else f"FAILED (exit {returncode}; see {folder / 'run.log'})"
    say(f"{outcome} {folder} in {time.monotonic() - started:.0f} s")
    return returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="a conf/experiment name whose hydra.sweeper.params list the jobs")
    parser.add_argument("--workers", type=int, default=1, help="jobs run at once (default 1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if os.environ.get("OMP_NUM_THREADS") != "1":
        parser.error("set OMP_NUM_THREADS=1: the study's runs are single-threaded, so that they are deterministic")
    jobs = list(sweep_jobs(args.experiment))
    # spelled out, not RunDir's: this runs in checkouts of the plans' commits, older than twostream.rundir
    to_run = [(folder, overrides) for folder, overrides in jobs if not (folder / "results.json").is_file()]
    say(f"{args.experiment}: {len(jobs)} jobs, {len(jobs) - len(to_run)} finished, {len(to_run)} to run, "
        f"{args.workers} at once")
    with ThreadPoolExecutor(args.workers) as pool:
        failed = sum(code != 0 for code in pool.map(lambda job: run_job(*job), to_run))
    if failed:
        say(f"{args.experiment}: {failed} job(s) failed; run the same command again to retry them")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
