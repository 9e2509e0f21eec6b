"""The paper's findings, tested on a paper table's runs: each finding is a difference of mean test
accuracy between two cells (or two methods of the same runs) that the paper found positive, with
its 95 % interval; "reproduced" when the interval lies above 0, "not shown" when it holds 0,
"reversed" when it lies below.

    python experiments/paper/findings.py paper_table2 multirun/paper_table2/*/ --out experiments/paper/table2

Two cells: the seeds of one cell are not the seeds of the other (other data, other nets), so the
interval is Welch's. Two methods of the same runs (e.g. SVM fusion vs the temporal stream): the
seeds pair them, so the interval is Student's on the per-run differences.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy.stats import t as student_t

from twostream.compare import Interval


@dataclass(frozen=True)
class Finding:
    """``a`` beats ``b`` (the paper's direction); each side is (cell, method), a cell being the job
    overrides that select it ("" = every run of the table). ``paper`` is the paper's own margin."""

    claim: str
    a: tuple[str, str]
    b: tuple[str, str]
    paper: str


# The paper's numbers: Simonyan & Zisserman, NIPS 2014, UCF-101 split 1 (Tables 1a, 1b, 3) and
# HMDB-51 (Table 2), in percent.
FINDINGS = {
    "paper_table1": [
        Finding("from scratch, dropout 0.9 beats 0.5", ("+paper/table1=scratch streams.spatial.dropout=0.9", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.5", "spatial"), "52.3 vs 42.5: +9.8"),
        Finding("pre-trained and fine-tuned beats from scratch (dropout 0.9)",
                ("+paper/table1=finetune streams.spatial.dropout=0.9", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.9", "spatial"), "72.8 vs 52.3: +20.5"),
        Finding("pre-trained and fine-tuned beats from scratch (dropout 0.5)",
                ("+paper/table1=finetune streams.spatial.dropout=0.5", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.5", "spatial"), "70.8 vs 42.5: +28.3"),
        Finding("last layer only beats from scratch (dropout 0.5)",
                ("+paper/table1=last streams.spatial.dropout=0.5", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.5", "spatial"), "72.7 vs 42.5: +30.2"),
        Finding("last layer only: dropout 0.5 beats 0.9", ("+paper/table1=last streams.spatial.dropout=0.5", "spatial"),
                ("+paper/table1=last streams.spatial.dropout=0.9", "spatial"), "72.7 vs 59.9: +12.8"),
    ],
    "paper_table2": [
        Finding("L=10 beats a single field (L=1)", ("+paper/table2=l10", "temporal"), ("+paper/table2=l1", "temporal"),
                "81.0 vs 73.9: +7.1"),
        Finding("L=5 beats L=1", ("+paper/table2=l5", "temporal"), ("+paper/table2=l1", "temporal"), "80.4 vs 73.9: +6.5"),
        Finding("L=10 beats L=5", ("+paper/table2=l10", "temporal"), ("+paper/table2=l5", "temporal"), "81.0 vs 80.4: +0.6"),
        Finding("mean subtraction helps (L=10)", ("+paper/table2=l10", "temporal"),
                ("+paper/table2=l10_no_mean", "temporal"), "81.0 vs 79.9: +1.1"),
        Finding("optical flow stacking beats trajectory stacking (L=10)", ("+paper/table2=l10", "temporal"),
                ("+paper/table2=trajectory", "temporal"), "81.0 vs 80.2: +0.8"),
        Finding("bi-directional beats one direction", ("+paper/table2=bidirectional", "temporal"),
                ("+paper/table2=l10", "temporal"), "81.2 (L=5 each way) vs 81.0: +0.2"),
        Finding("mean subtraction helps without camera pan", ("+paper/table2=no_pan", "temporal"),
                ("+paper/table2=no_pan_no_mean", "temporal"), "not in the paper (why it helps)"),
    ],
    "paper_table3": [
        Finding("multi-task beats the small set alone", ("+paper/table3=multitask", "temporal"),
                ("+paper/table3=alone", "temporal"), "55.4 vs 46.6: +8.8"),
        Finding("added classes beat the small set alone", ("+paper/table3=merged", "temporal"),
                ("+paper/table3=alone", "temporal"), "52.8 vs 46.6: +6.2"),
        Finding("multi-task beats added classes", ("+paper/table3=multitask", "temporal"),
                ("+paper/table3=merged", "temporal"), "55.4 vs 52.8: +2.6"),
    ],
    "paper_table4": [
        Finding("the temporal stream beats the spatial stream", ("", "temporal"), ("", "spatial"), "83.7 vs 73.0: +10.7"),
        Finding("averaging beats the temporal stream", ("", "fusion_average"), ("", "temporal"), "86.9 vs 83.7: +3.2"),
        Finding("the SVM beats averaging", ("", "fusion_svm"), ("", "fusion_average"), "88.0 vs 86.9: +1.1"),
    ],
    # Not the paper's: does a flow with a lower end-point error (experiments/flow_benchmark, on its
    # 64x64 crops of a synthetic scene) give a better temporal stream?
    "paper_flow": [
        Finding("tvl1 (EPE 0.22 px) beats farneback (0.56 px)", ("flow=tvl1", "temporal"), ("flow=farneback", "temporal"),
                "not in the paper"),
        Finding("tvl1 (EPE 0.22 px) beats dis (0.51 px)", ("flow=tvl1", "temporal"), ("flow=dis", "temporal"),
                "not in the paper"),
        Finding("tvl1_fast (EPE 0.22 px) beats farneback (0.56 px)", ("flow=tvl1_fast", "temporal"),
                ("flow=farneback", "temporal"), "not in the paper"),
    ],
}


def load_runs(folders: list[Path]) -> list[tuple[set[str], dict[str, float]]]:
    """Each run's job overrides and test accuracies."""
    runs = []
    for folder in folders:
        overrides = set(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
        runs.append((overrides, json.loads((folder / "results.json").read_text())["accuracy"]))
    return runs


def accuracies(runs: list[tuple[set[str], dict[str, float]]], cell: str, method: str) -> dict[str, float]:
    """{seed override: accuracy} of ``method`` over the runs whose overrides include all of ``cell``'s."""
    wanted = set(cell.split())
    found = {next(o for o in overrides if o.startswith("seed=")): acc[method]
             for overrides, acc in runs if wanted <= overrides}
    if not found:
        raise SystemExit(f"no run of cell {cell!r}")
    return found


def difference_interval(a: dict[str, float], b: dict[str, float], paired: bool) -> tuple[float, float]:
    """Mean of a - b and the half-width of its 95 % interval (paired Student's t, or Welch's)."""
    if paired:
        interval = Interval.of([a[seed] - b[seed] for seed in a])
        return interval.mean, interval.half_width
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0:
        return float(x.mean() - y.mean()), 0.0
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    return float(x.mean() - y.mean()), float(student_t.ppf(0.975, dof) * se)


def verdict(mean: float, half: float) -> str:
    if mean - half > 0:
        return "reproduced"
    return "reversed" if mean + half < 0 else "not shown"


def findings_table(table: str, folders: list[Path]) -> list[str]:
    """The Markdown table of ``table``'s findings on the runs in ``folders``."""
    runs = load_runs(folders)
    lines = ["| finding | paper (points) | here: difference ± 95 % interval (points) | runs | verdict |",
             "|---|---|---|---|---|"]
    for f in FINDINGS[table]:
        a, b = accuracies(runs, *f.a), accuracies(runs, *f.b)
        paired = f.a[0] == f.b[0]
        mean, half = difference_interval(a, b, paired)
        lines.append(f"| {f.claim} | {f.paper} | {100 * mean:+.1f} ± {100 * half:.1f} | "
                     f"{len(a)} vs {len(b)}{' (paired)' if paired else ''} | {verdict(mean, half)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=sorted(FINDINGS))
    parser.add_argument("runs", nargs="+", type=Path, help="the table's job folders (multirun/<table>/*/)")
    parser.add_argument("--out", type=Path, help="folder for findings.md (else printed only)")
    args = parser.parse_args()
    text = "\n".join([f"# {args.table}: the paper's findings", "", *findings_table(args.table, args.runs)]) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "findings.md").write_text(text)


if __name__ == "__main__":
    main()
