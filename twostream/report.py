"""The results table: each stream's and each fusion's test accuracy, next to chance."""

import json
from pathlib import Path
from typing import Any


def format_markdown(results: dict[str, Any]) -> str:
    """A Markdown table of ``results["accuracy"]`` (test) plus chance, with the validation accuracy
    beside it when the run has a validation split."""
    val = results.get("val_accuracy") or {}
    lines = [f"# {results['experiment']}: {results['dataset']} split {results['split']} "
             f"({results['num_test_videos']} test videos, {results['num_classes']} classes)", ""]
    if val:
        lines += ["| method | validation | test |", "|---|---|---|"]
        lines += [f"| {name} | {_percent(val.get(name))} | {acc:.1%} |" for name, acc in results["accuracy"].items()]
        lines.append(f"| chance | {results['chance']:.1%} | {results['chance']:.1%} |")
    else:
        lines += ["| method | accuracy |", "|---|---|"]
        lines += [f"| {name} | {acc:.1%} |" for name, acc in results["accuracy"].items()]
        lines.append(f"| chance | {results['chance']:.1%} |")
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def format_per_class(results: dict[str, Any]) -> str:
    """A Markdown table of ``results["per_class_accuracy"]``: one row per class, one column per method."""
    methods = list(results["per_class_accuracy"])
    lines = ["## Per-class accuracy", "", "| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for i, name in enumerate(results["classes"]):
        cells = [results["per_class_accuracy"][m][i] for m in methods]
        lines.append(f"| {name} | " + " | ".join(_percent(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write results.json and results.md (with the per-class table, when there is one) into
    ``output_dir``; return their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "results.json", output_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    per_class = "\n" + format_per_class(results) if "per_class_accuracy" in results else ""
    md_path.write_text(format_markdown(results) + per_class)
    return json_path, md_path
