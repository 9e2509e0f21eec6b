"""The default of ``fusion.svm.fit_on``, decided on validation videos alone (PLAN.md, "fit_on").

    python experiments/paper/confirmatory/fit_on.py experiments/paper/confirmatory/runs/confirm_table4/*/ \
        --out experiments/paper/confirmatory

(or the study's own ``multirun/confirm_table4/*/``).

For each run, its validation videos are cut in two halves (within each class, alternately in video
order). Each half in turn chooses the SVM and the other half judges it, for both regimes:

- ``train``: fitted on the training videos' scores, C chosen on the choosing half;
- ``val``: fitted on the choosing half's scores, C by cross-validation among them.

A run's figure per regime is the mean of the two judging halves' accuracies; no test score is read.
The regimes are compared paired over the runs (mean difference train - val, its 95 % t interval);
the rule fixed in PLAN.md: the better regime where the interval excludes 0, else ``train`` (the paper's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy import stats

from twostream.fusion import fit_svm_fusion
from twostream.fusion.stage import svm_fit_options
from twostream.rundir import RunDir
from twostream.scores import Scores

REGIMES = ("train", "val")


def validation_halves(video_ids: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint boolean masks over the validation videos: within each class, in video-id order,
    alternately the first half's and the second's."""
    first = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        first[members[np.argsort(video_ids[members], kind="stable")][::2]] = True
    return first, ~first


def regime_accuracies(run: Path) -> dict[str, float]:
    """The run's validation-only accuracy of each regime: the mean over the two judging halves."""
    run_dir = RunDir(run)
    cfg = OmegaConf.load(run_dir.config)
    streams = list(cfg.streams)
    train = [Scores.load(run_dir.scores(s, "train")) for s in streams]
    val = [Scores.load(run_dir.scores(s, "val")) for s in streams]
    labels = val[0].labels
    options = svm_fit_options(cfg)  # as the fuse stage fits it
    figures: dict[str, list[float]] = {regime: [] for regime in REGIMES}
    first, second = validation_halves(val[0].video_ids, labels)
    for choose, judge in ((first, second), (second, first)):
        chooser = ([v.scores[choose] for v in val], labels[choose])
        judged = [v.scores[judge] for v in val]
        fits = {"train": fit_svm_fusion([t.scores for t in train], train[0].labels, held_out=chooser, **options),
                "val": fit_svm_fusion(*chooser, **options)}
        for regime, fused in fits.items():
            figures[regime].append(float((fused.decision(judged).argmax(1) == labels[judge]).mean()))
    return {regime: float(np.mean(v)) for regime, v in figures.items()}


def decide(per_run: dict[str, dict[str, float]]) -> tuple[str, float, tuple[float, float]]:
    """(the default, mean difference train - val, its 95 % interval) under PLAN.md's rule."""
    d = np.array([r["train"] - r["val"] for r in per_run.values()])
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("inf")
    low, high = d.mean() - half, d.mean() + half
    return ("val" if high < 0 else "train"), float(d.mean()), (float(low), float(high))


def replicate(run: Path) -> str:
    """The run's replicate (``replicate.name`` of its config), which names its row in fit_on.md."""
    cfg = OmegaConf.load(RunDir(run).config)
    if "replicate" not in cfg:
        raise SystemExit(f"{run} has no replicate in its config: fit_on.py reads confirm_table4's runs")
    return cfg.replicate.name


def fit_on_text(runs: list[Path]) -> tuple[str, str]:
    """(the default PLAN.md's rule gives, fit_on.md) for confirm_table4's run folders (the study's, or
    their committed per-run files: config, overrides, training and validation scores)."""
    names = [replicate(run) for run in runs]
    if len(set(names)) < len(names):  # a repeat would replace a run's row and shrink n unseen
        raise SystemExit(f"confirm_table4's runs repeat a replicate: {sorted(names)}")
    per_run = {name: regime_accuracies(run) for name, run in zip(names, runs, strict=True)}
    choice, mean, (low, high) = decide(per_run)
    rows = "\n".join(f"| {name} | {100 * r['train']:.1f} | {100 * r['val']:.1f} |" for name, r in sorted(per_run.items()))
    return choice, (
        "# fusion.svm.fit_on, decided on validation videos alone\n\n"
        "`python experiments/paper/confirmatory/fit_on.py experiments/paper/confirmatory/runs/confirm_table4/*/`: each run's validation "
        "videos in two halves, one choosing, the other judging, then swapped (no test score read).\n\n"
        "| replicate | fit on train, % | fit on val, % |\n|---|---:|---:|\n" + rows +
        f"\n\nMean difference (train - val): {100 * mean:+.1f} points, 95 % interval [{100 * low:+.1f}, "
        f"{100 * high:+.1f}] over {len(per_run)} runs. PLAN.md's rule: **fit_on = {choice}**.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (confirm_table4's jobs)")
    parser.add_argument("--out", type=Path, required=True, help="folder for fit_on.md")
    args = parser.parse_args()
    choice, text = fit_on_text(args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit_on.md").write_text(text)
    print(f"fusion.svm.fit_on = {choice}; the table and interval in {args.out / 'fit_on.md'}")


if __name__ == "__main__":
    main()
