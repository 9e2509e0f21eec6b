"""The confirmatory study's analysis, fixed before its runs (PLAN.md beside this file).

    python experiments/paper/confirmatory/analyse.py multirun/confirm_table1 multirun/confirm_table2 \
        multirun/confirm_table4 --out experiments/paper/confirmatory

Every *tested* finding of experiments/paper/findings.py whose design can answer it (PLAN.md's family)
is a paired comparison over the replicates (each replicate: its own dataset draw, net seed and, for
Table 1(a), pre-trained net): a two-sided paired t-test, Holm's correction over the family; the
findings the paper reports as small also get an equivalence test (TOST) against ±MARGIN, with Holm
over those. Verdicts (PLAN.md): reproduced, reversed, equivalent, not shown.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from twostream.rundir import RunDir

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("findings", HERE.parent / "findings.py")
findings = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("findings", findings)
_spec.loader.exec_module(findings)

ALPHA = 0.05
MARGIN = 0.05  # equivalence margin: ±5 points of accuracy
# The family: confirmatory table -> (paper table of findings.py, the claims tested there).
FAMILY = {
    "confirm_table1": ("paper_table1", [f.claim for f in findings.FINDINGS["paper_table1"]]),
    "confirm_table2": ("paper_table2", ["L=10 beats L=5", "optical flow stacking beats trajectory stacking (L=10)",
                                        "bi-directional beats one direction",
                                        "mean subtraction helps without camera pan"]),
    "confirm_table4": ("paper_table4", ["the SVM beats averaging"]),
}
# The findings the paper reports as small (under 2 points), tested for equivalence too.
EQUIVALENCE = {"L=10 beats L=5", "optical flow stacking beats trajectory stacking (L=10)",
               "bi-directional beats one direction", "the SVM beats averaging"}
REPLICATE = "+confirm/replicate="


@dataclass
class Result:
    claim: str
    differences: np.ndarray  # per replicate, a - b
    dropped: tuple[str, ...] = ()  # replicates with a run in one of its two cells only (PLAN.md: dropped)
    p: float = float("nan")  # two-sided paired t-test
    p_holm: float = float("nan")
    p_tost: float = float("nan")
    p_tost_holm: float = float("nan")

    @property
    def verdict(self) -> str:
        if self.p_holm < ALPHA:
            return "reproduced" if self.differences.mean() > 0 else "reversed"
        if self.p_tost_holm < ALPHA:
            return f"equivalent (within ±{100 * MARGIN:.0f} points)"
        return "not shown"


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1), in the input order."""
    order = np.argsort(p_values)
    m, adjusted, running = len(p_values), [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def tost_p(differences: np.ndarray, margin: float) -> float:
    """The TOST p-value of a paired mean difference lying within (-margin, +margin)."""
    low = stats.ttest_1samp(differences, -margin, alternative="greater").pvalue
    high = stats.ttest_1samp(differences, margin, alternative="less").pvalue
    return float(max(low, high))


def finished_runs(multirun: Path) -> list[Path]:
    """The job folders of a sweep folder whose run finished (has its results.json), in name order."""
    return sorted(p for p in multirun.iterdir() if RunDir(p).results_json.exists())


def by_replicate(runs: list, cell: str, method: str) -> dict[str, float]:
    """{replicate: accuracy} of ``method`` in ``cell``; one run per replicate, or refused."""
    found = findings.accuracies(runs, cell, method)  # refuses mixed settings and repeated seeds
    replicates = {}
    for run in runs:
        if run.folder in found:
            name = next(o for o in run.overrides if o.startswith(REPLICATE))[len(REPLICATE):]
            if name in replicates:
                raise SystemExit(f"cell {cell!r} has two runs of replicate {name}")
            replicates[name] = found[run.folder]
    return replicates


def analyse(tables: dict[str, list[Path]], family: dict = FAMILY, equivalence: set[str] = EQUIVALENCE,
            listed: dict = findings.FINDINGS) -> list[Result]:
    """Every finding of ``family`` on the given multirun folders, with Holm-adjusted tests over them.

    PLAN.md's family by default; another pre-registered family (PLAN_multitask.md: analyse_multitask.py)
    passes its own tables, the claims among them tested for ``equivalence``, and its findings (``listed``:
    paper table -> findings.Finding list), and is corrected over its own findings only.
    """
    results = []
    for table, folders in tables.items():
        paper_table, claims = family[table]
        runs = findings.load_runs(folders)
        unknown = set(claims) - {f.claim for f in listed[paper_table]}
        if unknown:  # a finding of the family missing from the list would shrink Holm's family unseen
            raise SystemExit(f"{table}: the family's findings {sorted(unknown)} are not among {paper_table}'s")
        for f in (f for f in listed[paper_table] if f.claim in claims):
            a, b = by_replicate(runs, *f.a), by_replicate(runs, *f.b)
            # a replicate whose run in one cell could not complete is dropped from this finding (PLAN.md)
            d = np.array([a[r] - b[r] for r in sorted(set(a) & set(b))])
            result = Result(f.claim, d, tuple(sorted(set(a) ^ set(b))), p=float(stats.ttest_1samp(d, 0.0).pvalue))
            if f.claim in equivalence:
                result.p_tost = tost_p(d, MARGIN)
            results.append(result)
    for r, p in zip(results, holm([r.p for r in results]), strict=True):
        r.p_holm = p
    small = [r for r in results if r.claim in equivalence]
    for r, p in zip(small, holm([r.p_tost for r in small]), strict=True):
        r.p_tost_holm = p
    return results


def report(results: list[Result]) -> str:
    lines = ["| finding | n | difference ± 95 % interval (points; unadjusted) | p | p (Holm) | TOST p (Holm) | "
             "verdict |", "|---|---|---|---|---|---|---|"]
    for r in results:
        n, mean = len(r.differences), r.differences.mean()
        half = stats.t.ppf(0.975, n - 1) * r.differences.std(ddof=1) / np.sqrt(n)
        tost = "–" if np.isnan(r.p_tost_holm) else f"{r.p_tost_holm:.3g}"
        lines.append(f"| {r.claim} | {n} | {100 * mean:+.1f} ± {100 * half:.1f} | {r.p:.3g} | {r.p_holm:.3g} | "
                     f"{tost} | {r.verdict} |")
    dropped = [f"- {r.claim}: {', '.join(r.dropped)} (a run in one of its two cells only)" for r in results if r.dropped]
    if dropped:
        lines += ["", "Replicates dropped from a finding:", *dropped]
    return "\n".join(lines) + "\n"


def results_text(multiruns: list[Path]) -> str:
    """results.md: PLAN.md's family on the finished runs of ``multiruns`` (the sweep folders of
    FAMILY's tables, or their committed per-run files)."""
    tables = {m.name: finished_runs(m) for m in multiruns}
    if set(tables) != set(FAMILY):  # Holm's correction is over the whole family, never a part of it
        raise SystemExit(f"expected the sweep folders of {sorted(FAMILY)}, got {sorted(tables)}")
    return "# The confirmatory study's results\n\n" + report(analyse(tables))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multiruns", nargs="+", type=Path, help="multirun/confirm_table1 ... (each a sweep folder)")
    parser.add_argument("--out", type=Path, help="folder for results.md (else printed only)")
    args = parser.parse_args()
    text = results_text(args.multiruns)
    print(text)
    if args.out:
        (args.out / "results.md").write_text(text)


if __name__ == "__main__":
    main()
