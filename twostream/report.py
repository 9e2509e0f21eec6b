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


def write_results(results: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write results.json and results.md into ``output_dir``; return their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "results.json", output_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(format_markdown(results))
    return json_path, md_path
