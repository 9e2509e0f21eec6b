"""experiments/paper/findings.py: the differences between cells and their intervals, against scipy's
own t-tests on the same numbers, read from run folders as the table's multirun leaves them."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("findings", REPO / "experiments/paper/findings.py")
findings = importlib.util.module_from_spec(spec)
sys.modules["findings"] = findings  # its dataclasses look their module up there
spec.loader.exec_module(findings)


def make_run(folder: Path, overrides: list[str], accuracy: dict[str, float]) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "results.json").write_text(json.dumps({"accuracy": accuracy}))
    return folder


def test_cells_get_welchs_interval_and_methods_of_one_run_a_paired_one(tmp_path):
    l10, l1 = [0.40, 0.47, 0.52], [0.25, 0.22, 0.31, 0.27]
    runs = [make_run(tmp_path / f"a{i}", ["+paper/table2=l10", f"seed={i}", "+experiment=paper_table2"],
                     {"temporal": v}) for i, v in enumerate(l10)]
    runs += [make_run(tmp_path / f"b{i}", ["+paper/table2=l1", f"seed={i}"], {"temporal": v}) for i, v in enumerate(l1)]
    loaded = findings.load_runs(runs)
    a, b = findings.accuracies(loaded, "+paper/table2=l10", "temporal"), findings.accuracies(loaded, "+paper/table2=l1", "temporal")
    mean, half = findings.difference_interval(a, b, paired=False)
    low, high = stats.ttest_ind(l10, l1, equal_var=False).confidence_interval(0.95)
    assert (mean - half, mean + half) == pytest.approx((low, high))
    assert findings.verdict(mean, half) == "reproduced"

    spatial, svm = [0.2, 0.3, 0.25], [0.8, 0.7, 0.9]
    runs = [make_run(tmp_path / f"c{i}", [f"seed={i}"], {"spatial": s, "fusion_svm": f})
            for i, (s, f) in enumerate(zip(spatial, svm, strict=True))]
    loaded = findings.load_runs(runs)
    mean, half = findings.difference_interval(findings.accuracies(loaded, "", "spatial"),
                                              findings.accuracies(loaded, "", "fusion_svm"), paired=True)
    low, high = stats.ttest_rel(spatial, svm).confidence_interval(0.95)
    assert (mean - half, mean + half) == pytest.approx((low, high))
    assert findings.verdict(mean, half) == "reversed"
    assert findings.verdict(0.01, 0.05) == "not shown"


def test_every_finding_names_cells_its_table_runs():
    """A typo in a finding's cell would only show when the table is summarised: check them against
    the tables' sweeps now."""
    from test_paper_tables import sweep_jobs

    for table, listed in findings.FINDINGS.items():
        jobs = [set(job) for job in sweep_jobs(table)]
        for finding in listed:
            for cell, _ in (finding.a, finding.b):
                assert any(set(cell.split()) <= job for job in jobs), (table, cell)
