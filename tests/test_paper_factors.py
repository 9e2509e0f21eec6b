"""experiments/paper/factors.py: a synthetic class's two halves (appearance, motion) scored apart,
checked against answers counted by hand, and the command on run folders."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from omegaconf import OmegaConf

from twostream.rundir import RunDir
from twostream.scores import Scores

REPO = Path(__file__).resolve().parents[1]
factors = load_script("experiments/paper/factors.py")

CLASSES = ["CheckerSlide", "CheckerSpin", "StripesSlide", "StripesSpin"]


def scores_answering(answers: list[int], labels: list[int]) -> Scores:
    return Scores(np.array([f"v{i}" for i in range(len(labels))]), np.array(labels),
                  np.eye(len(CLASSES), dtype=np.float32)[answers], np.array(CLASSES))


def test_each_half_of_a_class_is_scored_apart():
    # truth -> answer: right; motion right only; appearance right only; neither; right
    labels, answers = [0, 0, 1, 2, 3], [0, 2, 0, 1, 3]
    got = factors.factor_accuracies(scores_answering(answers, labels))
    assert got == pytest.approx({"accuracy": 2 / 5, "motion": 3 / 5, "appearance": 3 / 5})
    assert factors.split_class("HalvesAccelerate") == ("Halves", "Accelerate")
    with pytest.raises(ValueError, match="not a synthetic class"):
        factors.split_class("ApplyEyeMakeup")


def test_the_command_groups_seeds_into_cells(tmp_path):
    labels = [0, 1, 2, 3]
    for cell, seed, answers in [("a", 0, [0, 1, 2, 3]), ("a", 1, [2, 3, 0, 1]), ("b", 0, [1, 0, 3, 2])]:
        run = tmp_path / f"{cell}{seed}"
        scores_answering(answers, labels).save(RunDir(run).scores("temporal", "test"))
        (run / ".hydra").mkdir()
        OmegaConf.save([f"+paper/t={cell}", f"seed={seed}", "+experiment=paper_t"], run / ".hydra/overrides.yaml")
    out = subprocess.run([sys.executable, str(REPO / "experiments/paper/factors.py"), *map(str, sorted(tmp_path.iterdir())),
                          "--method", "temporal"], capture_output=True, text=True, check=True).stdout
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()[2:]]
    # a: seed 0 all right, seed 1 right motion and wrong appearance; b: right appearance, wrong motion
    assert rows == [["+paper/t=a", "2", "50.0%", "100.0%", "50.0%"], ["+paper/t=b", "1", "0.0%", "0.0%", "100.0%"]]
    assert "chance 50%" in out.splitlines()[0]
