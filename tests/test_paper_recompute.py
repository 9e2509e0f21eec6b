"""experiments/paper/recompute.py: every exploratory table's means and findings recomputed from its
committed runs.json, the confirmatory study's result files from its committed per-run files, and
every interval the READMEs quote found among them."""

import json
import re
from pathlib import Path

import pytest
from conftest import load_script

from twostream.compare import load_runs_file, mean_table

REPO = Path(__file__).resolve().parents[1]
recompute = load_script("experiments/paper/recompute.py")

# The documents whose quoted intervals must come from the committed per-run files...
QUOTING = ["README.md", "docs/index.md", "experiments/paper/README.md", "experiments/temporal_stacking/README.md",
           "experiments/quickstart_seeds/README.md",
           *(str(p.relative_to(REPO)) for p in sorted((REPO / "experiments/paper").glob("*/README.md")))]
# ...but for the figures of runs whose per-run results were never recorded, which their README says
# cannot be recomputed: Table 1(a)'s 480-epoch check, Table 1(b)'s 4 extra seeds.
NOT_RECORDED = {
    "experiments/paper/table1/README.md": ["74.6 % ± 10.4", "59.3 % ± 12.7"],
    "experiments/paper/table2/README.md": ["+14.1 ± 5.5", "+10.1 ± 3.9", "+4.0 ± 5.8", "+7.0 ± 6.4", "−4.1 ± 5.3",
                                           "−0.2 ± 6.1"],
}
# "+14.4 ± 6.0", "−25.4 ± 7.1", "38.9 ± 3.5 %", "80.6% ± 10.4": a figure and its 95 % half-width.
QUOTED = re.compile(r"([+−-]?)(\d+\.\d) ?%? ± (\d+\.\d)")


def recomputed_figures() -> set[tuple[str, str]]:
    """(signed figure, half-width) of every cell mean and finding recomputed from the runs.json files,
    and of the confirmatory results recomputed from their per-run files."""
    findings = recompute._findings_module()
    texts = list(recompute.confirmatory_texts().values())
    for name, (_, _, table) in recompute.TABLES.items():
        runs_file = REPO / name / "runs.json"
        texts += mean_table(load_runs_file(runs_file))
        if table:
            texts.append(findings.findings_text(table, [runs_file]))
    return {(sign.replace("−", "-") + value, half) for sign, value, half in QUOTED.findall("\n".join(texts))}


def unmatched(text: str, figures: set[tuple[str, str]]) -> list[str]:
    """The quoted intervals of ``text`` that no recomputed figure gives (an unsigned figure may be
    either sign: "4.1 ± 5.3 better")."""
    missing = []
    for match in QUOTED.finditer(text):
        sign, value, half = match.groups()
        sign = sign.replace("−", "-")
        candidates = {sign + value} if sign else {value, "+" + value, "-" + value}
        if not any((c, half) in figures for c in candidates):
            missing.append(match.group(0))
    return missing


@pytest.fixture(scope="module")
def figures():
    return recomputed_figures()


def test_the_committed_confirmatory_results_are_their_recomputation(tmp_path, monkeypatch):
    """recompute.py --check compares each committed result file of the pre-registered study with its
    recomputation from confirmatory/runs/, and catches a figure changed in one."""
    recomputed = recompute.confirmatory_texts()
    confirmatory = REPO / "experiments/paper/confirmatory"
    committed = confirmatory / "results_multitask.md"
    # both families have run: each result file is committed, so each is recomputed and compared
    assert set(recomputed) == {committed, confirmatory / "results.md", confirmatory / "fit_on.md"}
    for target, text in recomputed.items():
        assert target.read_text() == text, target
    changed = tmp_path / "results_multitask.md"
    changed.write_text(committed.read_text().replace("+5.8", "+5.9", 1))
    monkeypatch.setattr(recompute, "confirmatory_texts", lambda: {changed: recomputed[committed]})
    monkeypatch.setattr(recompute, "TABLES", {})
    assert recompute.recompute(check=True) == ["confirmatory/results_multitask.md differs from its "
                                               "recomputation from confirmatory/runs/"]


def test_runs_json_is_what_comparison_md_lists(tmp_path):
    """Each committed runs.json is the reconstruction of its comparison.md (exact counts of its
    test videos), so a reader can redo it."""
    for name, (experiment, test_videos, _) in recompute.TABLES.items():
        committed = (REPO / name / "runs.json").read_text()
        assert recompute.runs_json(recompute.extract(REPO / name, experiment, test_videos)) == committed, name
        recorded = json.loads(committed)
        assert all(0 <= a <= 1 and abs(a * test_videos - round(a * test_videos)) < 1e-9
                   for run in recorded["runs"] for a in run["accuracy"].values()), name


def test_the_means_and_findings_recomputed_from_runs_json_are_the_committed_ones():
    assert recompute.recompute(check=True) == []


def test_every_interval_the_readmes_quote_is_recomputed(figures):
    assert "experiments/paper/table4/README.md" in QUOTING
    for document in QUOTING:
        text = (REPO / document).read_text()
        assert unmatched(text, figures) == NOT_RECORDED.get(document, []), document
        if document in NOT_RECORDED:
            assert "cannot be recomputed" in text, document


def test_a_quoted_figure_that_the_files_do_not_give_is_caught(figures):
    assert ("+14.4", "6.0") in figures  # Table 1(b): L=10 over L=1
    assert unmatched("L=10 beats L=1 (+14.4 ± 6.0) and scores 38.9 ± 3.5 %", figures) == []
    assert unmatched("L=10 beats L=1 (+14.5 ± 6.0)", figures) == ["+14.5 ± 6.0"]
    assert unmatched("L=10 beats L=1 (−14.4 ± 6.0)", figures) == ["−14.4 ± 6.0"]


def test_a_changed_run_changes_the_recomputed_means(tmp_path):
    """The check reads the runs: one run's accuracy changed in runs.json no longer gives comparison.md's means."""
    source = REPO / "experiments/paper/table4"
    recorded = json.loads((source / "runs.json").read_text())
    recorded["runs"][0]["accuracy"]["spatial"] += 1 / 72
    (tmp_path / "runs.json").write_text(json.dumps(recorded))
    assert mean_table(load_runs_file(tmp_path / "runs.json")) != recompute.means_section(source)


def test_a_runs_file_with_repeated_labels_or_missing_fields_is_refused(tmp_path):
    path = tmp_path / "runs.json"
    run = {"label": "0", "overrides": ["seed=0"], "seed": 0, "accuracy": {"spatial": 0.5}}
    path.write_text(json.dumps({"chance": 0.5, "runs": [run, run]}))
    with pytest.raises(ValueError, match="labels repeat"):
        load_runs_file(path)
    path.write_text(json.dumps({"runs": [run]}))
    with pytest.raises(ValueError, match="runs.json"):
        load_runs_file(path)


def test_findings_read_a_runs_json_as_they_read_the_run_folders_it_records(tmp_path):
    """One code path: Table 4's runs written out as run folders (results.json, .hydra/overrides.yaml)
    give the same findings.md as its runs.json."""
    findings = recompute._findings_module()
    runs_file = REPO / "experiments/paper/table4/runs.json"
    folders = []
    for run in json.loads(runs_file.read_text())["runs"]:
        folder = tmp_path / run["label"]
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in run["overrides"]))
        (folder / "results.json").write_text(json.dumps({"accuracy": run["accuracy"]}))
        folders.append(folder)
    assert findings.findings_text("paper_table4", folders) == findings.findings_text("paper_table4", [runs_file])
    assert findings.findings_text("paper_table4", [runs_file]) == (REPO / "experiments/paper/table4/findings.md").read_text()


def compared_from_runs_json(source: Path, out: Path, *, cli: bool) -> list[str]:
    """comparison.md made from ``source``/runs.json: by the command line (with its plots, slow on a
    loaded CPU) or by the functions it calls (without them)."""
    from twostream.compare import build_comparison, main, write_markdown

    if cli:
        main([str(source / "runs.json"), "--mean", "--out", str(out), "--tracking-mode", "disabled"])
    else:
        comparison = build_comparison(load_runs_file(source / "runs.json"), "t", mean=True)
        write_markdown(comparison, out / "comparison.md", [])
    return (out / "comparison.md").read_text().splitlines()


@pytest.mark.parametrize("cli", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_compare_reads_a_runs_json_as_the_runs_it_records(tmp_path, cli):
    """`python -m twostream.compare runs.json --mean`: the same per-run accuracies and mean table as
    the comparison.md the runs.json was reconstructed from, and no per-class table (no scores)."""
    source = REPO / "experiments/paper/table4"
    made = compared_from_runs_json(source, tmp_path, cli=cli)
    committed = (source / "comparison.md").read_text().splitlines()

    def accuracies(lines):
        header, rows = recompute._table_rows(lines, next(i for i, line in enumerate(lines) if line.startswith("| run |")))
        return [row[1:] for row in rows]  # the settings and accuracies, without the run's name

    assert accuracies(made) == accuracies(committed)
    assert recompute.means_section(tmp_path) == recompute.means_section(source)
    assert "## Per-class" not in "\n".join(made) and not (tmp_path / "per_class.png").exists()
