"""``python -m twostream +experiment=NAME``: compose the Hydra config and run the experiment."""

from typing import Any

import hydra
from omegaconf import DictConfig

from twostream.pipeline import run
from twostream.sweep import enable_hydra_plugin

enable_hydra_plugin()  # hydra/sweeper=optuna (Optuna studies as multiruns)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any] | None:
    """Entry point; returns the results (results.json's content) so a sweeper can optimise any of them."""
    return run(cfg)


if __name__ == "__main__":
    main()
