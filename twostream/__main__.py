"""``python -m twostream +experiment=NAME`` (or ``twostream ...``): compose the Hydra config and run it;
``twostream predict RUN_DIR VIDEO ...`` classifies videos with a finished run instead.

An expected failure (:class:`~twostream.errors.UserError`: a bad config value, missing data, a
stage run too early, a cache or checkpoint made with other settings) ends with its message and
exit code 1, without a traceback (``debug=true`` shows it). Ctrl-C says what was kept. With no
arguments at all, the synthetic quickstart runs.
"""

import logging
import sys
from collections.abc import Sequence
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from twostream.configs import config_dir
from twostream.errors import UserError
from twostream.sweep import enable_hydra_plugin

log = logging.getLogger(__name__)

enable_hydra_plugin()  # hydra/sweeper=optuna (Optuna studies as multiruns)

# What a bare `python -m twostream` runs: the whole pipeline on the built-in synthetic data.
NO_ARGUMENTS = ("+experiment=quickstart",)
INTERRUPTED = ("interrupted. What was finished is kept: every video already in the flow cache and each "
               "stream's checkpoint of its last complete epoch; run the same command again to continue "
               "where it stopped.")


def with_defaults(arguments: Sequence[str]) -> list[str]:
    """The command line's arguments, or the quickstart's when there are none."""
    return list(arguments) if arguments else list(NO_ARGUMENTS)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def task(cfg: DictConfig) -> dict[str, Any] | None:
    """Run the composed experiment; return its results (results.json's content) for a sweeper."""
    # said before the stages' libraries load (torch: seconds), so that a start is never silent
    log.info("%s: starting: loading torch, then checking the config and the data", cfg.name)
    from twostream.checks import check_added_keys  # noqa: PLC0415  (imports torch)
    from twostream.pipeline import run  # noqa: PLC0415

    try:
        check_added_keys(cfg, HydraConfig.get().overrides.task)
        return run(cfg)
    except UserError as error:
        # A sweep or multirun records a job's error itself; debug=true wants the traceback.
        if cfg.debug or HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(f"twostream: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"\ntwostream: {INTERRUPTED}", file=sys.stderr)
        sys.exit(130)


def main() -> None:
    """The command line (``python -m twostream`` and the ``twostream`` console script);
    ``twostream predict ...`` classifies videos with a finished run (:mod:`twostream.predict`)."""
    if sys.argv[1:2] == ["predict"]:
        # its own argparse command line, not a Hydra one; imported here so that an experiment's
        # start-up does not pay for the picture code
        from twostream.predict import main as predict_main

        predict_main(sys.argv[2:])
        return
    if not sys.argv[1:]:  # said only when the user gave none, not when they typed the default
        print(f"twostream: no arguments: running {' '.join(NO_ARGUMENTS)} (see --help)", file=sys.stderr)
    sys.argv[1:] = with_defaults(sys.argv[1:])
    task()


if __name__ == "__main__":
    main()
