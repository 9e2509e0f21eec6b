"""The package's layering (docs/architecture.md): each layer imports only layers below it, no two
files import each other, directly or through others, and tracking is a leaf that knows nothing of
the stages."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "twostream"

# Bottom-up, as docs/architecture.md draws it; names on one line are one layer (they do not import each other).
LAYERS = [
    {"errors"},
    {"fingerprint"},  # what every stored artefact records: its settings and its format version
    {"devices", "runlog", "scores", "configs", "rundir"},
    {"report"},  # results.md and the results' W&B tables: logs through a RunLog
    {"data"},
    {"flow"},
    {"cache"},
    {"inputs"},
    {"models"},
    {"train", "fusion"},
    {"sweep"},
    {"checks"},
    {"tracking"},
    {"pipeline", "predict_viz"},
    {"compare", "predict"},
    {"__main__"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
# tracking (W&B runs, logged values, provenance) sits above the stages and the checks so that they
# cannot import it (stages log to a RunLog), and is a leaf: of twostream it imports only these pieces.
TRACKING_MAY_IMPORT = {"tracking", "errors", "fingerprint", "devices", "runlog", "configs", "rundir"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every twostream module -> the twostream modules it imports (anywhere in the file)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "hydra_plugin" not in p.parts}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for target in targets:
                if target.startswith("twostream."):
                    # "from twostream.x import y" may name a module y; else the module x is meant
                    candidates = [f"{target}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
                    graph[name].update(c for c in candidates if c in modules)
                    graph[name].add(target if target in modules else target.rsplit(".", 1)[0])
    return graph


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_package_sits_in_a_layer():
    found = {layer(module_name(p)) for p in PACKAGE.rglob("*.py") if "hydra_plugin" not in p.parts}
    assert found - {"twostream"} <= set(LEVEL), f"not placed in LAYERS (and docs/architecture.md): {found - set(LEVEL)}"


def test_no_import_climbs_or_crosses_a_layer():
    climbing = [f"{module} imports {target}" for module, targets in imports().items() for target in targets
                if layer(module) != layer(target) and layer(module) in LEVEL
                and LEVEL[layer(target)] >= LEVEL[layer(module)]]
    assert not climbing, "imports against the layering:\n" + "\n".join(sorted(climbing))


def test_tracking_imports_nothing_of_the_stages():
    found = [f"{module} imports {target}" for module, targets in imports().items() if layer(module) == "tracking"
             for target in targets if target != "twostream" and layer(target) not in TRACKING_MAY_IMPORT]
    assert not found, "tracking must stay a leaf (stages log their own outputs through the RunLog " \
                      "they are handed):\n" + "\n".join(sorted(found))


def test_no_import_cycle_between_files():
    graph = imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target == module or target == "twostream":
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
