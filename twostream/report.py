"""The results table: each stream's and each fusion's test accuracy, next to chance."""

import json
from pathlib import Path
from typing import Any


def format_markdown(results: dict[str, Any]) -> str:
    """A Markdown table of ``results["accuracy"]`` plus chance."""
    lines = [f"# {results['experiment']}: {results['dataset']} split {results['split']} "
             f"({results['num_test_videos']} test videos, {results['num_classes']} classes)", "",
             "| method | accuracy |", "|---|---|"]
    lines += [f"| {name} | {acc:.1%} |" for name, acc in results["accuracy"].items()]
    lines.append(f"| chance | {results['chance']:.1%} |")
    return "\n".join(lines) + "\n"


def format_per_class(results: dict[str, Any]) -> str:
    """A Markdown table of ``results["per_class_accuracy"]``: one row per class, one column per method."""
    methods = list(results["per_class_accuracy"])
    lines = ["## Per-class accuracy", "", "| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for i, name in enumerate(results["classes"]):
        cells = [results["per_class_accuracy"][m][i] for m in methods]
        lines.append(f"| {name} | " + " | ".join("–" if c is None else f"{c:.1%}" for c in cells) + " |")
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
