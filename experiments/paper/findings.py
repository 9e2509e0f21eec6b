"""The paper's findings, tested on a paper table's runs: each finding is a difference of mean test
accuracy between two cells (or two methods of the same runs) that the paper found positive, with
its 95 % interval.

Each finding is of one kind (DESIGN.md, "Evaluation that a reviewer accepts"), and only a *tested*
one gets a verdict about the paper:

- *built in*: the synthetic generator makes it true; its row is a sanity check that the pipeline
  sees what it was given ("seen" when the interval lies above 0, "missed" otherwise);
- *tested*: the benchmark leaves room either way: "reproduced" when the interval lies above 0,
  "not shown" when it holds 0, "reversed" when it lies below, "not testable" when it has no width
  (fewer than 2 runs a side, or no variance: a difference of identical runs is no evidence);
- *needs real data*: the synthetic benchmark cannot answer it; the difference is shown, no verdict.

    python experiments/paper/findings.py paper_table2 multirun/paper_table2/*/ --out experiments/paper/table2
    python experiments/paper/findings.py paper_table2 experiments/paper/table2/runs.json   # the committed runs

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

from twostream.compare import Interval, load_runs_file
from twostream.rundir import RunDir

BUILT_IN, TESTED, NEEDS_REAL_DATA = "built in", "tested", "needs real data"


@dataclass(frozen=True)
class Finding:
    """``a`` beats ``b`` (the paper's direction); each side is (cell, method), a cell being the job
    overrides that select it ("" = every run of the table). ``paper`` is the paper's own margin;
    ``kind`` is :data:`BUILT_IN`, :data:`TESTED` or :data:`NEEDS_REAL_DATA`, and ``why`` says why."""

    claim: str
    a: tuple[str, str]
    b: tuple[str, str]
    paper: str
    kind: str
    why: str


# Why each kind, in short (the generator: twostream/data/synthetic.py; the tables' designs:
# experiments/paper/<table>/README.md).
_PRETRAIN = ("the target's classes are named by pattern alone and pre-training sees other patterns: "
             "whether borrowed filters and dropout help is left to the nets")
_DROPOUT = "the generator fixes no training budget or regulariser: dropout's effect is the nets' own"
_PAN = "the generator pans every clip on purpose, and mean subtraction removes exactly that pan"
_MOTIONS = "the generator's motions take about 10 frames to tell apart, so fewer fields must lose"
_STACKING = "both stackings see the same motions; the generator favours neither"
_DIRECTIONS = "forward and backward fields carry the same motions; the generator favours neither direction"
_BORROW = ("whether a second dataset's videos help the small target is left to the nets (with the "
           "extra set's classes as designed in table3/README.md)")
_HALVES = ("each stream sees half of each class by construction (motion for one, appearance for the "
           "other), so their ranking and fusion's gain are what the generator sets")
_SVM = "averaging and the SVM see the same two score vectors; the generator favours neither"
_FLOW = ("half of each synthetic class is texture that a noisier flow leaks into the temporal stream: "
         "whether lower EPE helps on real videos cannot be answered here")

# The paper's numbers: Simonyan & Zisserman, NIPS 2014, in percent. Split-1 figures (UCF-101 split 1:
# Tables 1a and 1b; HMDB-51 split 1: Table 2) unless marked: paper_table4's are the means over UCF-101's
# three splits of the paper's Table 4 (its split-1 fusion table, Table 3, reports fusions of other stream
# variants), and say so in their text.
THREE_SPLITS = "mean of 3 splits: the paper's Table 4"
FINDINGS = {
    "paper_table1": [
        Finding("from scratch, dropout 0.9 beats 0.5", ("+paper/table1=scratch streams.spatial.dropout=0.9", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.5", "spatial"), "52.3 vs 42.5: +9.8", TESTED, _DROPOUT),
        Finding("pre-trained and fine-tuned beats from scratch (dropout 0.9)",
                ("+paper/table1=finetune streams.spatial.dropout=0.9", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.9", "spatial"), "72.8 vs 52.3: +20.5", TESTED,
                _PRETRAIN),
        Finding("pre-trained and fine-tuned beats from scratch (dropout 0.5)",
                ("+paper/table1=finetune streams.spatial.dropout=0.5", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.5", "spatial"), "70.8 vs 42.5: +28.3", TESTED,
                _PRETRAIN),
        Finding("last layer only beats from scratch (dropout 0.5)",
                ("+paper/table1=last streams.spatial.dropout=0.5", "spatial"),
                ("+paper/table1=scratch streams.spatial.dropout=0.5", "spatial"), "72.7 vs 42.5: +30.2", TESTED,
                _PRETRAIN),
        Finding("last layer only: dropout 0.5 beats 0.9", ("+paper/table1=last streams.spatial.dropout=0.5", "spatial"),
                ("+paper/table1=last streams.spatial.dropout=0.9", "spatial"), "72.7 vs 59.9: +12.8", TESTED, _DROPOUT),
    ],
    "paper_table2": [
        Finding("L=10 beats a single field (L=1)", ("+paper/table2=l10", "temporal"), ("+paper/table2=l1", "temporal"),
                "81.0 vs 73.9: +7.1", BUILT_IN, _MOTIONS),
        Finding("L=5 beats L=1", ("+paper/table2=l5", "temporal"), ("+paper/table2=l1", "temporal"), "80.4 vs 73.9: +6.5",
                BUILT_IN, _MOTIONS),
        Finding("L=10 beats L=5", ("+paper/table2=l10", "temporal"), ("+paper/table2=l5", "temporal"), "81.0 vs 80.4: +0.6",
                TESTED, "5 fields already span half a motion: whether the other 5 add is left to the nets"),
        Finding("mean subtraction helps (L=10)", ("+paper/table2=l10", "temporal"),
                ("+paper/table2=l10_no_mean", "temporal"), "81.0 vs 79.9: +1.1", BUILT_IN, _PAN),
        Finding("optical flow stacking beats trajectory stacking (L=10)", ("+paper/table2=l10", "temporal"),
                ("+paper/table2=trajectory", "temporal"), "81.0 vs 80.2: +0.8", TESTED, _STACKING),
        Finding("bi-directional beats one direction", ("+paper/table2=bidirectional", "temporal"),
                ("+paper/table2=l10", "temporal"), "81.2 (L=5 each way) vs 81.0: +0.2", TESTED, _DIRECTIONS),
        Finding("mean subtraction helps without camera pan", ("+paper/table2=no_pan", "temporal"),
                ("+paper/table2=no_pan_no_mean", "temporal"), "not in the paper (why it helps)", TESTED,
                "without the pan the generator gives mean subtraction nothing to remove: any effect is the nets'"),
    ],
    "paper_table3": [
        Finding("multi-task beats the small set alone", ("+paper/table3=multitask", "temporal"),
                ("+paper/table3=alone", "temporal"), "55.4 vs 46.6: +8.8", TESTED, _BORROW),
        Finding("added classes beat the small set alone", ("+paper/table3=merged", "temporal"),
                ("+paper/table3=alone", "temporal"), "52.8 vs 46.6: +6.2", TESTED, _BORROW),
        Finding("multi-task beats added classes", ("+paper/table3=multitask", "temporal"),
                ("+paper/table3=merged", "temporal"), "55.4 vs 52.8: +2.6", TESTED, _BORROW),
    ],
    "paper_table4": [
        Finding("the temporal stream beats the spatial stream", ("", "temporal"), ("", "spatial"), f"83.7 vs 73.0: +10.7 ({THREE_SPLITS})",
                BUILT_IN, _HALVES),
        Finding("averaging beats the temporal stream", ("", "fusion_average"), ("", "temporal"), f"86.9 vs 83.7: +3.2 ({THREE_SPLITS})",
                BUILT_IN, _HALVES),
        Finding("the SVM beats averaging", ("", "fusion_svm"), ("", "fusion_average"), f"88.0 vs 86.9: +1.1 ({THREE_SPLITS})", TESTED, _SVM),
    ],
    # Not the paper's: does a flow with a lower end-point error (experiments/flow_benchmark, on its
    # 64x64 crops of a synthetic scene) give a better temporal stream?
    "paper_flow": [
        Finding("tvl1 (EPE 0.22 px) beats farneback (0.56 px)", ("flow=tvl1", "temporal"), ("flow=farneback", "temporal"),
                "not in the paper", NEEDS_REAL_DATA, _FLOW),
        Finding("tvl1 (EPE 0.22 px) beats dis (0.51 px)", ("flow=tvl1", "temporal"), ("flow=dis", "temporal"),
                "not in the paper", NEEDS_REAL_DATA, _FLOW),
        Finding("tvl1_fast (EPE 0.22 px) beats farneback (0.56 px)", ("flow=tvl1_fast", "temporal"),
                ("flow=farneback", "temporal"), "not in the paper", NEEDS_REAL_DATA, _FLOW),
    ],
}


# The job overrides that make one run a repeat of another: a seed, or a confirmatory replicate.
REPEAT_OVERRIDES = ("seed=", "+confirm/replicate=")


@dataclass(frozen=True)
class Run:
    """One job of a table's multirun: its folder, job overrides and test accuracy per method."""

    folder: Path
    overrides: frozenset[str]
    accuracy: dict[str, float]

    @property
    def seed(self) -> str:
        """What makes this run a repeat of its setting: its seed override, or its replicate's (the
        confirmatory study's replicates set the seed and the dataset draw together)."""
        return " ".join(sorted(o for o in self.overrides if o.startswith(REPEAT_OVERRIDES))) or "seed=(default)"


def load_runs(paths: list[Path]) -> list[Run]:
    """Each run's job overrides and test accuracies, from its run folder or from a table's runs.json
    (the per-run record of a table whose folders were not kept; twostream.compare reads it)."""
    runs = []
    for path in map(Path, paths):
        if path.is_file():
            runs += [Run(r.path, frozenset(f"{k}={v}" for k, v in r.overrides.items()), r.accuracy)
                     for r in load_runs_file(path)]
        else:
            run_dir = RunDir(path)
            runs.append(Run(path, frozenset(OmegaConf.load(run_dir.overrides)),
                            json.loads(run_dir.results_json.read_text())["accuracy"]))
    return runs


def accuracies(runs: list[Run], cell: str, method: str) -> dict[Path, float]:
    """{run folder: accuracy} of ``method`` over the runs whose overrides include all of ``cell``'s.

    The runs are keyed by their folder, never by their seed: two multiruns that share seeds are two
    sets of runs. They must be repeats of one setting, though: runs of the cell whose overrides
    differ in more than the seed (say a longer training) or that repeat a seed are refused, since
    pooling them would mix settings or count one run twice.
    """
    wanted = set(cell.split())
    members = [run for run in runs if wanted <= run.overrides]
    if not members:
        raise SystemExit(f"no run of cell {cell!r}")
    settings = {run.overrides - {run.seed} for run in members}
    if len(settings) > 1:
        differing = sorted(set.union(*map(set, settings)) - set.intersection(*map(set, settings)))
        raise SystemExit(f"cell {cell!r} matches runs of different settings ({', '.join(differing)}): "
                         "pass the folders of one setting only, or name the cell by the override that differs")
    seen: dict[str, Path] = {}
    for run in members:
        if run.seed in seen:
            raise SystemExit(f"cell {cell!r} has two runs with {run.seed}: {seen[run.seed]} and {run.folder} "
                             "(the same setting and seed is one run twice, not a repeat): pass one of them")
        seen[run.seed] = run.folder
    return {run.folder: run.accuracy[method] for run in members}


# Accuracies are fractions of at most a few thousand videos: a spread below this is rounding, not data.
NO_SPREAD = 1e-9


def difference_interval(a: dict[Path, float], b: dict[Path, float], paired: bool) -> tuple[float, float]:
    """Mean of a - b and the half-width of its 95 % interval (paired Student's t over the runs both
    sides share, or Welch's); the half-width is NaN where the data give no interval (fewer than 2
    runs a side, or no variance at all)."""
    if paired:
        interval = Interval.of([a[run] - b[run] for run in a])
        half = interval.half_width if interval.sd > NO_SPREAD else math.nan
        return interval.mean, half
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    if len(x) < 2 or len(y) < 2:
        return float(x.mean() - y.mean()), math.nan
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se <= NO_SPREAD:
        return float(x.mean() - y.mean()), math.nan
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    return float(x.mean() - y.mean()), float(student_t.ppf(0.975, dof) * se)


def verdict(mean: float, half: float, kind: str = TESTED) -> str:
    """What the interval says, by the finding's kind (the module's docstring)."""
    if kind == NEEDS_REAL_DATA:
        return "no verdict (needs real data)"
    if math.isnan(half):
        return "not testable"
    if kind == BUILT_IN:
        return "seen (sanity check)" if mean - half > 0 else "missed (sanity check failed)"
    if mean - half > 0:
        return "reproduced"
    return "reversed" if mean + half < 0 else "not shown"


def findings_table(table: str, paths: list[Path]) -> list[str]:
    """The Markdown table of ``table``'s findings on the runs in ``paths`` (run folders or runs.json files)."""
    runs = load_runs(paths)
    lines = ["| finding | kind | paper (points; split 1 unless marked) | here: difference ± 95 % interval (points) | runs | verdict |",
             "|---|---|---|---|---|---|"]
    for f in FINDINGS[table]:
        a, b = accuracies(runs, *f.a), accuracies(runs, *f.b)
        paired = f.a[0] == f.b[0]
        mean, half = difference_interval(a, b, paired)
        interval = f"{100 * mean:+.1f}" + ("" if math.isnan(half) else f" ± {100 * half:.1f}")
        lines.append(f"| {f.claim} | {f.kind} | {f.paper} | {interval} | "
                     f"{len(a)} vs {len(b)}{' (paired)' if paired else ''} | {verdict(mean, half, f.kind)} |")
    lines += ["", "Kinds: *built in* rows are sanity checks of the pipeline (the generator makes them true), "
              "*needs real data* rows get no verdict; only *tested* rows speak about the paper.", ""]
    lines += [f"- {f.claim} ({f.kind}): {f.why}." for f in FINDINGS[table]]
    return lines


def findings_text(table: str, paths: list[Path]) -> str:
    """findings.md: ``table``'s findings on the runs in ``paths``."""
    return "\n".join([f"# {table}: the paper's findings", "", *findings_table(table, paths)]) + "\n"


def kinds_table() -> list[str]:
    """Every finding of every table with its kind and why (experiments/paper/kinds.md)."""
    lines = ["| table | finding | paper (points; split 1 unless marked) | kind | why |", "|---|---|---|---|---|"]
    lines += [f"| {table} | {f.claim} | {f.paper} | {f.kind} | {f.why} |"
              for table, listed in FINDINGS.items() for f in listed]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=[*sorted(FINDINGS), "kinds"],
                        help="a paper table, or 'kinds' for every finding's kind (no runs needed)")
    parser.add_argument("runs", nargs="*", type=Path,
                        help="the table's job folders (multirun/<table>/*/), or its runs.json")
    parser.add_argument("--out", type=Path, help="folder for findings.md or kinds.md (else printed only)")
    args = parser.parse_args()
    if args.table == "kinds":
        text = "\n".join(["# Every finding's kind", "", *kinds_table()]) + "\n"
        name = "kinds.md"
    elif not args.runs:
        parser.error(f"{args.table} needs its job folders (multirun/{args.table}/*/)")
    else:
        text = findings_text(args.table, args.runs)
        name = "findings.md"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / name).write_text(text)


if __name__ == "__main__":
    main()
