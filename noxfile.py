"""Developer tasks: `nox -s tests` (fast), `nox -s tests_all` (what CI runs), `nox -s lint`, `nox -s docs`, `nox -s quickstart`, `nox -s bench_cache`, `nox -s mutants`,
`nox -s gpu`, `nox -s scale`, `nox -s paper` (the paper's tables on the synthetic benchmark)."""

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The fast suite: every test less those marked slow (pyproject's addopts), for development."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs, env={"WANDB_MODE": "offline"})


@nox.session(python="3.11")
def tests_all(session: nox.Session) -> None:
    """The whole suite, slow end-to-end tests included (what CI and the README's test command run)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-m", "slow or not slow", *session.posargs, env={"WANDB_MODE": "offline"})


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The docs/ site (mkdocs.yml), built as CI builds it: a warning, a broken link or anchor fails it."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the package, the experiments' scripts, the tests and this file."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "twostream", "experiments", "tests", "noxfile.py")


@nox.session(python="3.11")
def mutants(session: nox.Session) -> None:
    """Planted one-line bugs the tests must catch (tests/mutants.py; mutant names after -- to pick some)."""
    session.install("-e", ".[test]")
    session.run("python", "tests/mutants.py", *session.posargs)


@nox.session(python="3.11")
def quickstart(session: nox.Session) -> None:
    """The whole pipeline on the synthetic dataset (extra overrides after --)."""
    session.install("-e", ".")
    session.run("python", "-m", "twostream", "+experiment=quickstart", *session.posargs)


@nox.session(python="3.11")
def bench_cache(session: nox.Session) -> None:
    """Flow cache layouts against JPEG folders, and extraction throughput (experiments/cache_benchmark)."""
    session.install("-e", ".")
    session.run("python", "experiments/cache_benchmark/benchmark.py", *session.posargs)


@nox.session(python="3.11")
def bench_flow(session: nox.Session) -> None:
    """Flow estimators side by side: EPE on many kinds of known motion, worst case, pairs/s (options after --)."""
    session.install("-e", ".")
    session.run("python", "experiments/flow_benchmark/benchmark.py", *session.posargs)


@nox.session(python="3.11")
def bench_tvl1_sizes(session: nox.Session) -> None:
    """tvl1 on clips of 10 frame sizes: compile seconds and share, per-size EPE, static vs dynamic shapes."""
    session.install("-e", ".")
    session.run("python", "experiments/tvl1_sizes/benchmark.py", *session.posargs)


@nox.session(python="3.11")
def gpu(session: nox.Session) -> None:
    """The prepared GPU check: tvl1, extraction, training speed, bf16 (experiments/gpu; options after --)."""
    session.install("-e", ".")
    session.run("python", "experiments/gpu/benchmark.py", *(session.posargs or ["--out", "experiments/gpu/table.md"]))


@nox.session(python="3.11")
def scale(session: nox.Session) -> None:
    """Every stage at a tenth, a third and all of UCF-101 split 1 (tiny clips): growth factors (experiments/scale)."""
    session.install("-e", ".")
    session.run("python", "experiments/scale/benchmark.py", *(session.posargs or ["--out", "experiments/scale/table.md"]),
                env={"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})


# The paper's studies on the synthetic benchmark (experiments/paper): experiment name -> output folder.
PAPER_TABLES = {"paper_table1": "table1", "paper_table2": "table2", "paper_table3": "table3",
                "paper_table4": "table4", "paper_flow": "flow_methods"}


SWEEP_FUNCTIONS = ("range(", "choice(", "glob(", "interval(", "tag(", "sort(", "shuffle(")


def is_sweep(override: str) -> bool:
    """Whether a Hydra override sweeps (``a,b`` at the top level of its value, or a sweep function),
    which only a multirun (-m) accepts; ``key=[a,b]`` is one list value, not a sweep."""
    value = override.partition("=")[2].strip()
    if value.startswith(SWEEP_FUNCTIONS):
        return True
    depth = 0
    for char in value:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


@nox.session(python="3.11")
def paper(session: nox.Session) -> None:
    """The paper's tables on the synthetic benchmark, 3 seeds a cell, 10 in Table 1 (experiments/paper/README.md).

    After --: table names to run (default all: paper_table1 ... paper_table4, paper_flow) and Hydra
    overrides for every job, the scale knob: e.g. 'seed=range(0,10)' device=cuda (a sweep is left out
    of Table 1's pre-training, a single run).
    """
    session.install("-e", ".")
    tables = [a for a in session.posargs if a in PAPER_TABLES] or list(PAPER_TABLES)
    overrides = [a for a in session.posargs if a not in PAPER_TABLES]
    # one thread: the numbers in experiments/paper were measured so (the thread count changes the sums)
    env = {"OMP_NUM_THREADS": "1"}
    for table in tables:
        if table == "paper_table1":  # its pre-trained rows start from this run's weights
            session.run("python", "-m", "twostream", "+experiment=paper_table1_pretrain",
                        *(o for o in overrides if not is_sweep(o)), env=env)
        session.run("python", "-m", "twostream", "-m", f"+experiment={table}", *overrides, env=env)
        jobs = sorted(Path("multirun", table).glob("[0-9]*"), key=lambda job: int(job.name))
        out = f"experiments/paper/{PAPER_TABLES[table]}"
        session.run("python", "-m", "twostream.compare", *map(str, jobs), "--mean", "--out", out, "--title", table,
                    env=env)
        session.run("python", "experiments/paper/findings.py", table, *map(str, jobs), "--out", out)
    # each table's runs.json (its per-run results, committed) from the comparison.md just written
    session.run("python", "experiments/paper/recompute.py", "--extract")
