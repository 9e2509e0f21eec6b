"""The confirmatory study's pilot (PLAN.md, "the pilot rule"): fix the from-scratch budget from
training accuracy alone.

Trains the scratch cell at dropout 0.9 on the pilot replicate (not one of the 20) for each budget,
each run in its own folder, training only: no test stage runs, and of each run's log only the last
epoch's *training* accuracy is read. The budget is the smallest whose training accuracy is within
2 points of the next doubling's (the largest if none), written to pilot.md for
``study.scratch_epochs``.

    OMP_NUM_THREADS=1 python experiments/paper/confirmatory/pilot.py --out experiments/paper/confirmatory
"""

import argparse
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

BUDGETS = (120, 240, 480, 960)
WITHIN = 0.02  # two points of training accuracy
TRAIN_ACCURACY = re.compile(r"spatial epoch (\d+): loss [\d.]+, train accuracy ([\d.]+)")


def run_folder(budget: int) -> Path:
    return Path("multirun/confirm_pilot") / f"epochs_{budget}"


def twostream(budget: int, stage: str) -> None:
    subprocess.run([sys.executable, "-m", "twostream", "+experiment=confirm_pilot", f"study.scratch_epochs={budget}",
                    f"stage={stage}", f"hydra.run.dir={run_folder(budget)}"], check=True)


def last_training_accuracy(log: Path) -> tuple[int, float]:
    """(epoch, training accuracy) of the last epoch a run's log reports."""
    matches = TRAIN_ACCURACY.findall(log.read_text())
    if not matches:
        raise SystemExit(f"{log}: no training epoch logged")
    epoch, accuracy = matches[-1]
    return int(epoch), float(accuracy)


def choose_budget(accuracy: dict[int, float]) -> int:
    """The smallest budget whose training accuracy is within WITHIN of the next doubling's, else the largest."""
    for budget, doubled in pairwise(BUDGETS):
        if abs(accuracy[doubled] - accuracy[budget]) <= WITHIN:
            return budget
    return BUDGETS[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for pilot.md")
    parser.add_argument("--read-only", action="store_true", help="read the runs' logs, run nothing")
    args = parser.parse_args()
    if not args.read_only:
        twostream(BUDGETS[0], "extract")  # one cache for every budget
        for budget in BUDGETS:
            twostream(budget, "train")
    accuracy, rows = {}, []
    for budget in BUDGETS:
        epoch, accuracy[budget] = last_training_accuracy(run_folder(budget) / "__main__.log")
        if epoch != budget:
            raise SystemExit(f"{run_folder(budget)}: stopped at epoch {epoch} of {budget}; run it again to resume")
        rows.append(f"| {budget} | {100 * accuracy[budget]:.1f} % |")
    chosen = choose_budget(accuracy)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pilot.md").write_text(
        "# The pilot: the from-scratch budget (training accuracy only)\n\n"
        "Scratch cell, dropout 0.9, pilot replicate (seed 999, data seed 999), `python "
        "experiments/paper/confirmatory/pilot.py`. Last epoch's training accuracy per budget; no validation "
        "or test figure was read.\n\n| epochs | training accuracy |\n|---:|---:|\n" + "\n".join(rows) +
        f"\n\nThe rule (PLAN.md): the smallest budget within {100 * WITHIN:.0f} points of the next doubling's "
        f"(the largest if none): **study.scratch_epochs = {chosen}**.\n")
    print(f"study.scratch_epochs = {chosen}")


if __name__ == "__main__":
    main()
