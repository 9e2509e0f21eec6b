"""Recompute every exploratory table's means and findings, and the confirmatory study's results,
from their committed per-run files.

    python experiments/paper/recompute.py            # writes each findings.md and confirmatory result file,
                                                     # checks each comparison.md's means
    python experiments/paper/recompute.py --check    # writes nothing; exit 1 if any file disagrees
    python experiments/paper/recompute.py --extract  # (re)builds each runs.json from its comparison.md

Each folder below holds a ``runs.json``: per run its label, overrides, seed and test accuracy per
method. The exploratory runs' folders (results.json, .hydra/) were not kept, so each runs.json was
*reconstructed* from the folder's comparison.md, which ``twostream.compare`` wrote from those
results.json files: its per-run table lists every run's differing overrides and its accuracies to
0.1 %. A test set of n videos makes each accuracy k/n, and k is the one count that prints as the
table's figure (checked), so the runs.json accuracies are exact. The overrides are the ones the
table shows (those that differ between runs) plus the experiment's ``+experiment=NAME``.
``nox -s paper`` runs ``--extract`` after remaking its tables, so a table's runs.json always goes
with its comparison.md.

The means are ``twostream.compare``'s own (:func:`twostream.compare.mean_table`), the findings
``findings.py``'s: the same code reads run folders and runs.json files.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

from twostream.compare import RUNS_FILE, load_runs_file, mean_table

REPO = Path(__file__).resolve().parents[2]

# folder: (experiment, test videos as its README states them, findings.py's table or None)
TABLES = {
    "experiments/paper/table1": ("paper_table1", 63, "paper_table1"),
    "experiments/paper/table2": ("paper_table2", 72, "paper_table2"),
    "experiments/paper/table3": ("paper_table3", 72, "paper_table3"),
    "experiments/paper/table4": ("paper_table4", 72, "paper_table4"),
    "experiments/paper/flow_methods": ("paper_flow", 72, "paper_flow"),
    "experiments/quickstart_seeds": ("quickstart", 72, None),  # README.md quotes its SVM fusion's interval
}
METHODS = ("spatial", "temporal", "fusion_average", "fusion_svm")


def _script(relative: str):
    """A script of experiments/paper (``findings.py``, ``confirmatory/analyse.py``...), loaded once
    as the module its file's stem names: its dataclasses, and the scripts that load it, look it up there."""
    path = Path(__file__).parent / relative
    loaded = sys.modules.get(path.stem)
    if loaded is None or Path(getattr(loaded, "__file__", "")) != path:  # not another module of that name
        spec = importlib.util.spec_from_file_location(path.stem, path)
        sys.modules[path.stem] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[path.stem])
    return sys.modules[path.stem]


def _findings_module():
    """findings.py, the exploratory and confirmatory tables' findings."""
    return _script("findings.py")


@functools.cache  # fit_on.md's refits take a while; the per-run files do not change within a process
def confirmatory_texts() -> dict[Path, str]:
    """{result file of the pre-registered study: its text recomputed from the committed per-run files
    under confirmatory/runs/}, for the families that have run (their result file is committed: the
    first one is written by the family's analysis, analyse.py or fit_on.py)."""
    confirmatory = Path(__file__).parent / "confirmatory"
    runs = confirmatory / "runs"
    analyse = _script("confirmatory/analyse.py")
    builders = {  # result file -> how its analysis makes it from the committed runs
        "results_multitask.md": lambda: _script("confirmatory/analyse_multitask.py").results_text(
            runs / "confirm_multitask"),
        "results.md": lambda: analyse.results_text([runs / table for table in analyse.FAMILY]),
        "fit_on.md": lambda: _script("confirmatory/fit_on.py").fit_on_text(
            analyse.finished_runs(runs / "confirm_table4"))[1],
    }
    return {confirmatory / name: build() for name, build in builders.items() if (confirmatory / name).exists()}


def _table_rows(lines: list[str], start: int) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the Markdown table that begins at line ``start``."""
    header = [c.strip() for c in lines[start].strip("| \n").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("| \n").split("|")])
    return header, rows


def _full_keys(experiment: str, columns: list[str]) -> dict[str, str]:
    """Each column's override key: comparison.md shortens a swept key to its last dotted part
    (``dropout`` for ``streams.spatial.dropout``); the experiment's sweep names it in full."""
    sweep = OmegaConf.load(REPO / "conf/experiment" / f"{experiment}.yaml")
    params = list(dict.fromkeys([*(OmegaConf.select(sweep, "hydra.sweeper.params", default={}) or {}), "seed"]))
    keys = {}
    for column in columns:
        matches = [p for p in params if p == column or p.endswith("." + column)]
        if len(matches) != 1:
            raise SystemExit(f"{experiment}: column {column!r} names {len(matches)} of the sweep's keys {params}")
        keys[column] = matches[0]
    return keys


def extract(folder: Path, experiment: str, test_videos: int) -> dict:
    """runs.json's content, read from ``folder/comparison.md``'s per-run table."""
    lines = (folder / "comparison.md").read_text().splitlines()
    title = lines[0].removeprefix("# ")
    header, rows = _table_rows(lines, next(i for i, line in enumerate(lines) if line.startswith("| run |")))
    methods = [c for c in header if c in METHODS]
    settings = [c for c in header[1:] if c not in METHODS]
    keys = _full_keys(experiment, settings)
    chance = float(re.search(r"chance = ([\d.]+)%", "\n".join(lines)).group(1)) / 100
    runs = []
    for row in rows:
        values = dict(zip(header, row, strict=True))
        accuracy = {}
        for method in methods:
            correct = round(float(values[method].rstrip("%")) / 100 * test_videos)
            if f"{correct / test_videos:.1%}" != values[method]:
                raise SystemExit(f"{folder}: {values[method]} is no count of {test_videos} test videos")
            accuracy[method] = correct / test_videos
        cell = ", ".join(values[c] for c in settings if c != "seed")  # values only: a label holds no '/'
        runs.append({"label": values["run"], "cell": cell, "overrides": [f"+experiment={experiment}"] + [
            f"{keys[c]}={values[c]}" for c in settings], "seed": int(values["seed"]), "accuracy": accuracy})
    labels = [r["label"] for r in runs]
    for run in runs:  # two multiruns in one table number their jobs alike: the cell tells them apart
        if labels.count(run["label"]) > 1:
            run["label"] = f"{run['label']} ({run['cell']})"
    for run in runs:
        del run["cell"]
    return {"title": title, "experiment": experiment,
            "source": "reconstructed from comparison.md (its per-run table, written by twostream.compare from "
                      "each run's results.json)",
            "chance": round(1 / round(1 / chance), 6), "test_videos": test_videos, "runs": runs}


def runs_json(recorded: dict) -> str:
    """runs.json's text: its header fields, then one run a line (a diff shows which run changed)."""
    head = {k: v for k, v in recorded.items() if k != "runs"}
    runs = ",\n".join("  " + json.dumps(run) for run in recorded["runs"])
    return json.dumps(head, indent=1)[:-2] + ',\n "runs": [\n' + runs + "\n ]\n}\n"


def means_section(folder: Path) -> list[str]:
    """The mean table as comparison.md holds it."""
    lines = (folder / "comparison.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Mean over"))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[first:end]


def recompute(check: bool) -> list[str]:
    """Every folder's means (checked against comparison.md) and findings (written, or with ``check``
    compared with findings.md), and the confirmatory study's result files likewise; returns the
    disagreements."""
    findings = _findings_module()
    problems = []
    for name, (_, _, table) in TABLES.items():
        folder = REPO / name
        runs_file = folder / RUNS_FILE
        if mean_table(load_runs_file(runs_file)) != means_section(folder):
            problems.append(f"{name}: the means recomputed from {RUNS_FILE} differ from comparison.md's")
        if table is None:
            continue
        text = findings.findings_text(table, [runs_file])
        target = folder / "findings.md"
        if check and (not target.is_file() or target.read_text() != text):
            problems.append(f"{name}: findings.md differs from the findings recomputed from {RUNS_FILE}")
        elif not check:
            target.write_text(text)
    for target, text in confirmatory_texts().items():
        if check and target.read_text() != text:
            problems.append(f"confirmatory/{target.name} differs from its recomputation from confirmatory/runs/")
        elif not check:
            target.write_text(text)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 where a file disagrees")
    mode.add_argument("--extract", action="store_true", help="rebuild each runs.json from its comparison.md")
    args = parser.parse_args()
    if args.extract:
        for name, (experiment, test_videos, _) in TABLES.items():
            recorded = extract(REPO / name, experiment, test_videos)
            (REPO / name / RUNS_FILE).write_text(runs_json(recorded))
            print(f"{name}/{RUNS_FILE}: {len(recorded['runs'])} runs")
        return
    problems = recompute(args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{len(TABLES)} tables: means as in comparison.md, findings "
              + ("as in findings.md" if args.check else "written to findings.md")
              + "; the confirmatory study's result files " + ("as committed" if args.check else "rewritten"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
