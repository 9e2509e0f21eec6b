"""The results table: each stream's and each fusion's test accuracies next to the baselines, and
where the same figures go in a W&B run.

results.json (written by the fuse stage) holds, per method (stream or fusion): ``accuracy`` (test
top-1), ``top_k_accuracy`` (test, of the ``top_k`` = min(5, classes) best classes),
``mean_class_accuracy`` (test top-1 of each class, averaged over the classes), ``val_accuracy``
(validation top-1), ``per_class_accuracy`` and ``confusion`` (test counts, rows: true class,
columns: predicted); and the baselines ``chance`` (1/C) and ``majority_baseline`` (the share of the
test set's largest class, ``majority_class``: what always answering that class scores). The SVM's
``svm_selection`` (the accuracy its C was chosen by, and how) is a selection figure, shown apart
from the validation accuracies. Older results files without the newer keys are shown with what they
have.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twostream.rundir import RunDir
from twostream.runlog import RunLog


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _validation_column(results: dict[str, Any]) -> dict[str, float | None] | None:
    """Each method's validation accuracy, or None when the run has no validation split. fusion_svm's
    entry in ``val_accuracy`` is its selection figure (shown on its own line), not a validation accuracy."""
    val = results.get("val_accuracy") or {}
    if not val:
        return None
    return {m: None if m == "fusion_svm" and results.get("svm_C") is not None else val.get(m)
            for m in results["accuracy"]}


def format_markdown(results: dict[str, Any]) -> str:
    """A Markdown table of the test accuracies (top-1, top-k, mean-class) per method, then the
    majority-class and chance baselines; the validation accuracy beside them when the run has a
    validation split; the SVM's selection figure on a line of its own below."""
    val = _validation_column(results)
    k = results.get("top_k")
    top_k, mean_class = results.get("top_k_accuracy") or {}, results.get("mean_class_accuracy") or {}
    headers = ["method", *(["validation top-1"] if val is not None else []), "test top-1",
               *([f"test top-{k}"] if top_k else []), *(["test mean-class"] if mean_class else [])]

    def row(name: str, validation: float | None, top1: float | None, topk: float | None,
            mean: float | None) -> str:
        cells = [name, *([_percent(validation)] if val is not None else []), _percent(top1),
                 *([_percent(topk)] if top_k else []), *([_percent(mean)] if mean_class else [])]
        return "| " + " | ".join(cells) + " |"

    lines = [f"# {results['experiment']}: {results['dataset']} split {results['split']} "
             f"({results['num_test_videos']} test videos, {results['num_classes']} classes)", "",
             "| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
    lines += [row(m, (val or {}).get(m), acc, top_k.get(m), mean_class.get(m)) for m, acc in results["accuracy"].items()]
    chance = results["chance"]
    if "majority_baseline" in results:
        lines.append(row(f"majority class (always {results['majority_class']})", None,
                         results["majority_baseline"], None, None))
    lines.append(row("chance (1/C)", chance, chance, min(1.0, (k or 1) * chance), chance))
    notes = []
    selection = results.get("svm_selection")
    if selection:
        notes.append(f"fusion_svm's C = {results['svm_C']:g}: {_percent(selection['accuracy'])} is the accuracy it was "
                     f"chosen by ({selection['how']}), a selection figure, not a validation accuracy.")
    if results.get("train_keep") == "best_val":
        notes.append("Each stream is tested with its weights of the epoch best on validation (train.keep=best_val).")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def format_per_class(results: dict[str, Any]) -> str:
    """A Markdown table of ``results["per_class_accuracy"]``: one row per class, one column per method."""
    methods = list(results["per_class_accuracy"])
    lines = ["## Per-class accuracy", "", "| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for i, name in enumerate(results["classes"]):
        cells = [results["per_class_accuracy"][m][i] for m in methods]
        lines.append(f"| {name} | " + " | ".join(_percent(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def confusion_rows(classes: Sequence[str], counts: Sequence[Sequence[int]]) -> tuple[list[str], list[list[Any]]]:
    """A confusion matrix as a table: the header (``true \\ predicted``, then the classes) and one row
    per true class (its name, then its counts per predicted class)."""
    return ["true \\ predicted", *classes], [[name, *row] for name, row in zip(classes, counts, strict=True)]


def format_confusion(results: dict[str, Any]) -> str:
    """A Markdown confusion matrix of each method's test predictions (rows: true class, columns: predicted)."""
    lines = ["## Confusion matrices (test videos; rows: true class, columns: predicted class)"]
    for method, counts in results["confusion"].items():
        header, rows = confusion_rows(results["classes"], counts)
        lines += ["", f"### {method}", "", "| " + " | ".join(header) + " |",
                  "|---|" + "---:|" * len(results["classes"])]
        lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], run_dir: RunDir) -> tuple[Path, Path]:
    """Write results.json and results.md (with the per-class table and confusion matrices, when there
    are some) into the run folder; return their paths."""
    run_dir.root.mkdir(parents=True, exist_ok=True)
    json_path, md_path = run_dir.results_json, run_dir.results_md
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    sections = [format_markdown(results)]
    if "per_class_accuracy" in results:
        sections.append(format_per_class(results))
    if "confusion" in results:
        sections.append(format_confusion(results))
    md_path.write_text("\n".join(sections))
    return json_path, md_path


def log_results(run_log: RunLog, results: dict[str, Any]) -> None:
    """The results in a W&B run: scalars in its summary, and tables (results, per-class accuracy, one
    confusion matrix per method) that ``wandb leet`` lists and the web UI shows as table panels."""
    methods = list(results["accuracy"])
    val = _validation_column(results) or {}
    selection = results.get("svm_selection")
    run_log.set_summary({f"accuracy/{m}": v for m, v in results["accuracy"].items()}
                        | {f"top{results['top_k']}_accuracy/{m}": v for m, v in results["top_k_accuracy"].items()}
                        | {f"mean_class_accuracy/{m}": v for m, v in results["mean_class_accuracy"].items()}
                        | {f"val_accuracy/{m}": v for m, v in val.items() if v is not None}
                        | ({"svm_selection_accuracy": selection["accuracy"]} if selection else {})
                        | {"chance": results["chance"], "majority_baseline": results["majority_baseline"],
                           "svm_C": results["svm_C"]})
    k = results["top_k"]
    run_log.log_table("results", ["method", "validation top-1", "test top-1", f"test top-{k}", "test mean-class"],
                      [[m, val.get(m), results["accuracy"][m], results["top_k_accuracy"][m],
                        results["mean_class_accuracy"][m]] for m in methods]
                      + [[f"majority class (always {results['majority_class']})", None,
                          results["majority_baseline"], None, None],
                         ["chance (1/C)", results["chance"], results["chance"], min(1.0, k * results["chance"]),
                          results["chance"]]])
    run_log.log_table("per_class_accuracy", ["class", *methods],
                      [[c, *(results["per_class_accuracy"][m][i] for m in methods)]
                       for i, c in enumerate(results["classes"])])
    for method, counts in results["confusion"].items():
        run_log.log_table(f"confusion/{method}", *confusion_rows(results["classes"], counts))
