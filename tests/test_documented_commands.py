"""Every command that --help, the README, docs/ and the experiments' READMEs show works as written:
`python -m twostream ...` composes and passes the config checks (multirun sweeps: their first value),
`twostream predict` and `python -m twostream.compare` parse, `nox -s NAME` names a session, a script
exists; and every line of a shell block in the README and docs/ is one of these kinds."""

import ast
import re
import shlex
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from twostream import compare, predict
from twostream.__main__ import with_defaults
from twostream.checks import check_config

REPO = Path(__file__).resolve().parents[1]
FRONT = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]  # what users read first: every command checked
DOCUMENTS = [*FRONT, REPO / "conf/hydra/help/twostream.yaml", *sorted((REPO / "experiments").glob("*/README.md"))]
ARGS = r"((?:[ \t]+[^\s`#|;&]+)*)"  # the words after a command, up to the end of the code span or a shell operator
COMMAND = re.compile(r"-m twostream(?![.\w])" + ARGS)
# `twostream predict` (the installed script) is `python -m twostream.predict`; compare has no script
ENTRY_POINTS = {"predict": predict.parse_args, "compare": compare.parse_args}
ENTRY = re.compile(r"(?:\btwostream |-m twostream\.)(predict|compare)(?![.\w])" + ARGS)
NOX = re.compile(r"\bnox -s((?:[ \t]+[a-z_][a-z0-9_]*)+)")  # session names are lower case: NAME is a placeholder
SCRIPT = re.compile(r"\bpython3? ((?:experiments|tests)/[\w/]+\.py)\b")
# Hydra's own options and its node: they choose how to run, not what; --cfg/--help print and stop.
NOT_OVERRIDES = ("--cfg", "--help", "--info", "-m", "--multirun", "job", "hydra", "plugins")
# what a shell block may run besides the commands above: the install (checked by .ci/run), the test runner
OTHER_PROGRAMS = ("python3.11 -m venv ", ". .venv/bin/activate", "pip install ", "python -m pytest")


def texts(documents: list[Path]) -> list[tuple[Path, str]]:
    """Each document's text with shell line continuations joined."""
    return [(d, d.read_text().replace("\\\n", " ")) for d in documents]


def where(document: Path, text: str, position: int) -> str:
    return f"{document.relative_to(REPO)}:{text[:position].count(chr(10)) + 1}"


def is_fragment(words: list[str]) -> bool:
    """A command with placeholders ("dataset.root=...", "$SLURM_ARRAY_TASK_ID", "flow=NAME", "<run>", "ARGS")."""
    return any("..." in w or "$" in w or w.startswith("<") or re.search(r"(^|=)[A-Z_]+$", w) for w in words)


def documented_commands() -> list[tuple[str, list[str], bool]]:
    """(where, overrides, whether it runs) of every documented command; fragments with placeholders
    are left out. A command with --help, --info or --cfg only prints: it must compose, not run."""
    found = []
    for document, text in texts(DOCUMENTS):
        for match in COMMAND.finditer(text):
            words = shlex.split(match.group(1))
            if is_fragment(words):
                continue
            overrides = [w.split(",")[0] if "=" in w else w for w in words  # a sweep: its first value
                         if w not in NOT_OVERRIDES and not w.startswith(("hydra/", "hydra."))]
            runs = not any(w in ("--help", "--info", "--cfg") for w in words)
            # a bare `python -m twostream` runs what no arguments run
            found.append((where(document, text, match.start()), overrides if words else with_defaults([]), runs))
    return found


def entry_point_commands() -> list[tuple[str, str, list[str]]]:
    """(where, program, arguments) of every `twostream predict` / `python -m twostream.compare` with arguments."""
    found = []
    for document, text in texts(DOCUMENTS):
        for match in ENTRY.finditer(text):
            words = shlex.split(match.group(2))
            if words and not is_fragment(words):  # a bare name is the command mentioned, not run
                found.append((where(document, text, match.start()), match.group(1), words))
    return found


def nox_sessions() -> set[str]:
    """The sessions noxfile.py defines (functions decorated with @nox.session)."""
    tree = ast.parse((REPO / "noxfile.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any("session" in ast.unparse(d) for d in node.decorator_list)}


def shell_lines(documents: list[Path]) -> list[tuple[str, str]]:
    """(where, command) of every command in a fenced shell block: comments dropped, `&&` chains split."""
    found = []
    for document, text in texts(documents):
        for block in re.finditer(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
            for line in block.group(1).splitlines():
                for part in re.split(r"&&|;", re.sub(r"(^|\s)#.*$", "", line)):
                    if part.strip():
                        found.append((where(document, text, block.start()), part.strip()))
    return found


COMMANDS = documented_commands()
ENTRY_COMMANDS = entry_point_commands()


def test_the_documents_show_commands():
    assert len(COMMANDS) >= 15 and any("+experiment=paper_ucf101" in c for _, c, _ in COMMANDS)
    assert {"predict", "compare"} <= {program for _, program, _ in ENTRY_COMMANDS}
    assert any(d.parent.name == "docs" for d in FRONT), "docs/ was not read"


@pytest.mark.parametrize("where, overrides, runs", COMMANDS, ids=[w for w, _, _ in COMMANDS])
def test_a_documented_command_composes_and_passes_the_checks(where, overrides, runs):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[*overrides, "paths.output_dir=."])
    OmegaConf.resolve(cfg.dataset)
    if runs:
        check_config(cfg)


@pytest.mark.parametrize("where, program, words", ENTRY_COMMANDS, ids=[w for w, _, _ in ENTRY_COMMANDS])
def test_a_documented_predict_or_compare_command_parses(where, program, words):
    if "--help" in words:
        with pytest.raises(SystemExit) as stopped:
            ENTRY_POINTS[program](words)
        assert stopped.value.code == 0
    else:
        ENTRY_POINTS[program](words)  # a usage error exits (SystemExit 2) and fails the test


def test_every_documented_nox_session_and_script_exists():
    sessions = nox_sessions()
    assert {"tests", "tests_all", "docs", "lint"} <= sessions
    for document, text in texts(DOCUMENTS):
        for match in NOX.finditer(text):
            unknown = set(match.group(1).split()) - sessions
            assert not unknown, f"{where(document, text, match.start())}: no nox session {unknown}"
        for match in SCRIPT.finditer(text):
            assert (REPO / match.group(1)).is_file(), f"{where(document, text, match.start())}: no {match.group(1)}"


def test_every_shell_line_of_the_readme_and_docs_is_a_checked_command():
    """A new kind of command in a shell block must get a check above (or be one of OTHER_PROGRAMS)."""
    checked = re.compile(r"(\S+=\S+ )*(python -m twostream\b|twostream predict |nox -s |python3? (experiments|tests)/)")
    unchecked = [f"{w}: {line}" for w, line in shell_lines(FRONT)
                 if not checked.match(line) and not line.startswith(OTHER_PROGRAMS)]
    assert not unchecked, "commands no test checks:\n" + "\n".join(unchecked)


def test_the_readme_test_command_is_what_ci_and_nox_tests_all_run():
    """The README's second command runs the whole suite, as CI and `nox -s tests_all` do."""
    readme = (REPO / "README.md").read_text()
    test_command = re.search(r"pip install -e '\.\[test\]' && (python -m pytest[^\n`]*)", readme).group(1)
    words = shlex.split(test_command)
    assert words[3:] == ["-m", "slow or not slow"], test_command
    assert test_command.replace("'", '"') in (REPO / ".ci/run").read_text()
    noxfile = (REPO / "noxfile.py").read_text()
    assert re.search(r'def tests_all\(.*?"-m", "slow or not slow"', noxfile, re.S)


def test_nox_paper_gives_a_single_run_only_the_overrides_that_do_not_sweep():
    """noxfile.is_sweep (nox's interpreter may lack Hydra) agrees with Hydra's own override parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sys.path.insert(0, str(REPO))
    try:
        from noxfile import is_sweep
    finally:
        sys.path.remove(str(REPO))
    overrides = ["seed=range(0,10)", "seed=0,1,2", "+paper/table1=scratch,last", "streams.spatial.dropout=choice(0.5,0.9)",
                 "fusion.svm.C_grid=[0.1,1]", "x={a:1,b:2}", "device=cuda", "seed=1", "train.lr=glob(*)"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    assert [is_sweep(o) for o in overrides] == [p.is_sweep_override() for p in parsed]
    assert sum(map(is_sweep, overrides)) == 5
