"""experiments/paper/findings.py: the differences between cells and their intervals, against scipy's
own t-tests on the same numbers, read from run folders as the table's multirun leaves them."""

import json
from pathlib import Path

import pytest
from conftest import load_script
from scipy import stats

findings = load_script("experiments/paper/findings.py")


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


def test_runs_are_keyed_by_folder_and_a_cell_mixing_settings_or_repeating_a_seed_is_refused(tmp_path):
    """Two multiruns of one cell that share seeds used to replace each other silently (a dict keyed by
    the seed override): 6 runs became 3, the longer training's replacing the shorter's."""
    short = [make_run(tmp_path / f"short{i}", ["+paper/table2=l10", f"seed={i}"], {"temporal": 0.4 + i / 100})
             for i in range(3)]
    longer = [make_run(tmp_path / f"long{i}", ["+paper/table2=l10", f"seed={i}", "train.epochs=480"],
                       {"temporal": 0.6 + i / 100}) for i in range(3)]
    with pytest.raises(SystemExit, match="different settings.*train.epochs=480"):
        findings.accuracies(findings.load_runs(short + longer), "+paper/table2=l10", "temporal")

    again = [make_run(tmp_path / f"again{i}", ["+paper/table2=l10", f"seed={i}"], {"temporal": 0.5}) for i in range(1)]
    with pytest.raises(SystemExit, match="two runs with seed=0"):
        findings.accuracies(findings.load_runs(short + again), "+paper/table2=l10", "temporal")

    # more seeds of the same setting from a second multirun pool, each run counted once
    more = [make_run(tmp_path / f"more{i}", ["+paper/table2=l10", f"seed={i}"], {"temporal": 0.5}) for i in (3, 4)]
    found = findings.accuracies(findings.load_runs(short + more), "+paper/table2=l10", "temporal")
    assert sorted(found) == sorted(short + more)


def test_a_difference_without_variance_is_not_testable_never_reproduced(tmp_path):
    same = [make_run(tmp_path / f"a{i}", ["+paper/table2=l10", f"seed={i}"], {"temporal": 0.5}) for i in range(3)]
    other = [make_run(tmp_path / f"b{i}", ["+paper/table2=l1", f"seed={i}"], {"temporal": 0.25}) for i in range(3)]
    runs = findings.load_runs(same + other)
    a, b = (findings.accuracies(runs, cell, "temporal") for cell in ("+paper/table2=l10", "+paper/table2=l1"))
    mean, half = findings.difference_interval(a, b, paired=False)
    assert mean == pytest.approx(0.25)
    assert findings.verdict(mean, half) == "not testable"
    # one run a side gives no interval either
    mean, half = findings.difference_interval({tmp_path: 0.5}, {tmp_path / "x": 0.2}, paired=False)
    assert findings.verdict(mean, half) == "not testable"
    # paired: the same difference in every run has no variance
    both = [make_run(tmp_path / f"c{i}", [f"seed={i}"], {"temporal": 0.3 + i / 10, "spatial": 0.1 + i / 10})
            for i in range(3)]
    runs = findings.load_runs(both)
    mean, half = findings.difference_interval(findings.accuracies(runs, "", "temporal"),
                                              findings.accuracies(runs, "", "spatial"), paired=True)
    assert findings.verdict(mean, half) == "not testable"


def test_only_tested_findings_get_a_verdict_about_the_paper():
    kinds = {findings.BUILT_IN, findings.TESTED, findings.NEEDS_REAL_DATA}
    for listed in findings.FINDINGS.values():
        for finding in listed:
            assert finding.kind in kinds and finding.why, finding.claim
    assert findings.verdict(0.2, 0.05, findings.BUILT_IN) == "seen (sanity check)"
    assert findings.verdict(-0.2, 0.05, findings.BUILT_IN) == "missed (sanity check failed)"
    assert findings.verdict(0.2, 0.05, findings.NEEDS_REAL_DATA) == "no verdict (needs real data)"
    assert findings.verdict(0.2, 0.05, findings.TESTED) == "reproduced"
