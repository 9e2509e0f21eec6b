"""``python -m twostream +experiment=NAME``: compose the Hydra config and run the experiment."""

import hydra
from omegaconf import DictConfig

from twostream.pipeline import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Entry point; returns the SVM fusion accuracy so Hydra sweepers can optimise it."""
    results = run(cfg)
    return results["accuracy"]["fusion_svm"] if results else None


if __name__ == "__main__":
    main()
