"""Which half of a synthetic class a method gets right: each synthetic class is an appearance
(texture) with a motion, so a test answer can be right in its motion, its appearance, both
(accuracy) or neither. The paper tables' READMEs use this to explain a result, e.g. a temporal
stream that names the motions as well with every flow method but guesses the texture better from
some methods' flow errors.

    python experiments/paper/factors.py multirun/paper_flow/*/ --method temporal

Prints one Markdown row per cell (runs that differ only in seed), with the mean over its runs of
the accuracy, the motion accuracy and the appearance accuracy on the test videos. Chance levels:
1 / motions and 1 / appearances of the test videos' classes.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from twostream.data.synthetic import MOTIONS, TEXTURE_COLOURS
from twostream.rundir import RunDir
from twostream.scores import Scores


def split_class(name: str) -> tuple[str, str]:
    """``CheckerSlide`` -> (``Checker``, ``Slide``); ValueError for a class the generator cannot make."""
    for appearance in TEXTURE_COLOURS:
        motion = name.removeprefix(appearance)
        if motion != name and motion in MOTIONS:
            return appearance, motion
    raise ValueError(f"{name!r} is not a synthetic class (an appearance of {list(TEXTURE_COLOURS)} "
                     f"followed by a motion of {list(MOTIONS)})")


def factor_accuracies(scores: Scores) -> dict[str, float]:
    """Accuracy, and the share of test answers with the right motion and with the right appearance."""
    parts = [split_class(str(c)) for c in scores.classes]
    answers, truths = scores.scores.argmax(1), scores.labels
    return {"accuracy": float(np.mean(answers == truths)),
            "motion": float(np.mean([parts[a][1] == parts[t][1] for a, t in zip(answers, truths, strict=True)])),
            "appearance": float(np.mean([parts[a][0] == parts[t][0] for a, t in zip(answers, truths, strict=True)]))}


def cell_of(run: Path) -> str:
    """The run's job overrides other than its seed and experiment: the cell it belongs to."""
    overrides = OmegaConf.load(RunDir(run).overrides)
    return " ".join(o for o in overrides
                    if not o.startswith(("seed=", "tracking.", "paths.", "name=", "+experiment=")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of a paper table (multirun/<table>/*/)")
    parser.add_argument("--method", required=True, help="a stream or fusion method with test scores, e.g. temporal")
    args = parser.parse_args()
    cells: dict[str, list[dict[str, float]]] = defaultdict(list)
    classes = set()
    for run in args.runs:
        scores = Scores.load(RunDir(run).scores(args.method, "test"))
        classes |= {split_class(str(scores.classes[label])) for label in scores.labels}
        cells[cell_of(run)].append(factor_accuracies(scores))
    motions, appearances = {m for _, m in classes}, {a for a, _ in classes}
    print(f"| cell | runs | accuracy | motion right (chance {1 / len(motions):.0%}) "
          f"| appearance right (chance {1 / len(appearances):.0%}) |\n|---|---|---|---|---|")
    for cell, runs in cells.items():
        means = {k: np.mean([r[k] for r in runs]) for k in runs[0]}
        print(f"| {cell or 'all'} | {len(runs)} | {means['accuracy']:.1%} | {means['motion']:.1%} | "
              f"{means['appearance']:.1%} |")


if __name__ == "__main__":
    main()
