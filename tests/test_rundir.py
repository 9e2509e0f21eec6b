"""The run folder's layout: twostream/rundir.py is the only module of the package and the studies that
spells it, and the layout is the one docs/formats.md documents (the tests elsewhere spell the paths
on purpose: they pin the files users find, independently of rundir)."""

import ast
from pathlib import Path

import pytest

from twostream.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
SCANNED = [*sorted((REPO / "twostream").rglob("*.py")), *sorted((REPO / "experiments").rglob("*.py")),
           REPO / "noxfile.py"]
RUNDIR = REPO / "twostream" / "rundir.py"

# Files and folders that share a name with a run folder's but are not in one: (file, name) -> why.
NOT_A_RUN_FOLDER = {
    ("twostream/data/synthetic.py", "splits"): "the generated dataset's split files, under dataset.root",
    ("twostream/models/__init__.py", "checkpoints"): "torch hub's folder of downloaded weights",
    ("experiments/cache_benchmark/benchmark.py", "results.json"): "the benchmark's own results file",
    ("experiments/paper/confirmatory/analyse.py", "results.md"): "the analysis's table, in a folder of its own",
    ("experiments/paper/recompute.py", "results.md"): "the confirmatory analysis's table, recomputed",
}
# Run-folder paths spelled by code that must also run where twostream.rundir does not exist yet:
# (file, name) -> why.
BEFORE_RUNDIR = {
    ("experiments/paper/confirmatory/run_jobs.py", "results.json"):
        "runs the confirmatory study in checkouts of its plans' commits, which predate rundir.py",
}


def layout_names() -> set[str]:
    """Every name a run folder's path is made of, as RunDir spells it; ``{}`` where a stream, method,
    subset or dataset goes."""
    run = RunDir(Path("ROOT"))
    paths = [run.config, run.overrides, run.splits, run.split_settings, run.left_out_videos,
             run.missing_videos("{}"), run.checkpoint("{}"), run.scores_dir, run.scores("{}", "{}"),
             run.svm_model, run.results_json, run.results_md, run.wandb]
    return {part for path in paths for part in path.relative_to(run.root).parts}


def spelled(node: ast.AST) -> str | None:
    """A string or f-string as text, each formatted value as ``{}``; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of ``tree`` (prose, which may name the files it describes)."""
    bodies = [n.body for n in ast.walk(tree)
              if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)]
    return {id(body[0].value) for body in bodies
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)}


def path_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string that builds a path: an operand of ``/``, an argument of ``Path()``,
    ``joinpath``, ``with_name``, ``glob``, ``os.path.join``, and any other string constant holding a
    ``/`` (docstrings aside)."""
    found, prose = [], docstrings(tree)
    for node in ast.walk(tree):
        operands = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("Path", "joinpath", "with_name", "glob", "rglob", "join"):
                operands = list(node.args)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "/" in node.value \
                and id(node) not in prose:
            operands = [node]
        found += [(node.lineno, text) for text in map(spelled, operands) if text is not None]
    return found


def run_folder_spellings(path: Path, names: set[str]) -> list[str]:
    """``file:line: text`` of every path string in ``path`` made with a run folder's name, but those
    NOT_A_RUN_FOLDER and BEFORE_RUNDIR list."""
    relative = path.relative_to(REPO).as_posix()
    hits = []
    for line, text in path_strings(ast.parse(path.read_text(), filename=str(path))):
        parts = set(text.split("/"))
        if any(name in parts and (relative, name) not in NOT_A_RUN_FOLDER | BEFORE_RUNDIR for name in names):
            hits.append(f"{relative}:{line}: {text!r}")
    return sorted(set(hits))


def test_the_layout_is_the_documented_one():
    run = RunDir("out")
    assert run.checkpoint("temporal") == Path("out/checkpoints/temporal.pt")
    assert run.scores("fusion_svm", "val") == Path("out/scores/fusion_svm_val.npz")
    assert (run.svm_model, run.results_json, run.results_md) == \
        (Path("out/fusion/svm.pkl"), Path("out/results.json"), Path("out/results.md"))
    assert (run.config, run.overrides) == (Path("out/.hydra/config.yaml"), Path("out/.hydra/overrides.yaml"))
    assert (run.splits, run.split_settings) == (Path("out/splits"), Path("out/splits/split.json"))
    assert (run.left_out_videos, run.missing_videos("ucf101"), run.wandb) == \
        (Path("out/left_out_videos.txt"), Path("out/missing_videos_ucf101.txt"), Path("out/wandb"))
    formats = (REPO / "docs" / "formats.md").read_text()
    for name in ("checkpoints/<stream>.pt", "scores/<stream>_<train|val|test>.npz", "fusion/svm.pkl", "results.json",
                 "results.md", ".hydra/config.yaml", ".hydra/overrides.yaml", "splits/", "split.json",
                 "left_out_videos.txt", "missing_videos_<dataset>.txt", "wandb/"):
        assert name in formats, f"docs/formats.md does not document {name}"


def test_only_rundir_spells_a_run_folders_paths():
    names = layout_names()
    assert {"checkpoints", "{}.pt", "scores", "{}_{}.npz", "svm.pkl", "results.json", ".hydra"} <= names
    hits = [hit for path in SCANNED if path != RUNDIR for hit in run_folder_spellings(path, names)]
    assert not hits, "run-folder paths spelled outside twostream/rundir.py (ask a RunDir):\n" + "\n".join(hits)


@pytest.mark.parametrize("planted", ['out / "checkpoints" / f"{stream}.pt"', 'Path(out, "results.json")',
                                     'out / f"scores/{method}_{subset}.npz"', 'out / ".hydra" / "config.yaml"'])
def test_the_scan_finds_a_planted_spelling(tmp_path, planted):
    module = tmp_path / "planted.py"
    module.write_text(f"from pathlib import Path\n\nPLANTED = {planted}\n")
    found = [text for _, text in path_strings(ast.parse(module.read_text()))
             if set(text.split("/")) & layout_names()]
    assert found, f"{planted} was not found"
