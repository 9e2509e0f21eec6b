"""Every `python -m twostream ...` command that --help, the README and the experiments' READMEs show
composes and passes the config checks as written (multirun sweeps: their first value)."""

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from twostream.__main__ import with_defaults
from twostream.checks import check_config

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", REPO / "conf/hydra/help/twostream.yaml",
             *sorted((REPO / "experiments").glob("*/README.md"))]
COMMAND = re.compile(r"-m twostream(?![.\w])((?:[ \t]+[^\s`#|;&]+)*)")
# Hydra's own options and its node: they choose how to run, not what; --cfg/--help print and stop.
NOT_OVERRIDES = ("--cfg", "--help", "--info", "-m", "--multirun", "job", "hydra", "plugins")


def documented_commands() -> list[tuple[str, list[str], bool]]:
    """(where, overrides, whether it runs) of every documented command; fragments with placeholders
    are left out. A command with --help, --info or --cfg only prints: it must compose, not run."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text().replace("\\\n", " ")  # shell line continuations
        for match in COMMAND.finditer(text):
            words = shlex.split(match.group(1))
            if any("..." in w or "$" in w or w.startswith("<") or re.search(r"=[A-Z]+$", w) for w in words):
                continue  # a fragment ("dataset.root=...", "$SLURM_ARRAY_TASK_ID", "flow=NAME")
            line = text[:match.start()].count("\n") + 1
            overrides = [w.split(",")[0] if "=" in w else w for w in words  # a sweep: its first value
                         if w not in NOT_OVERRIDES and not w.startswith(("hydra/", "hydra."))]
            runs = not any(w in ("--help", "--info", "--cfg") for w in words)
            # a bare `python -m twostream` runs what no arguments run
            found.append((f"{document.relative_to(REPO)}:{line}", overrides if words else with_defaults([]), runs))
    return found


COMMANDS = documented_commands()


def test_the_documents_show_commands():
    assert len(COMMANDS) >= 15 and any("+experiment=paper_ucf101" in c for _, c, _ in COMMANDS)


@pytest.mark.parametrize("where, overrides, runs", COMMANDS, ids=[w for w, _, _ in COMMANDS])
def test_a_documented_command_composes_and_passes_the_checks(where, overrides, runs):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[*overrides, "paths.output_dir=."])
    OmegaConf.resolve(cfg.dataset)
    if runs:
        check_config(cfg)
