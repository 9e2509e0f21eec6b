"""Developer tasks: `nox -s tests`, `nox -s lint`, `nox -s quickstart`, `nox -s bench_cache`, `nox -s mutants`,
`nox -s gpu`."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite (what CI runs)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs, env={"WANDB_MODE": "offline"})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and this file."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "twostream", "tests", "noxfile.py")


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
def gpu(session: nox.Session) -> None:
    """The prepared GPU check: tvl1, extraction, training speed, bf16 (experiments/gpu; options after --)."""
    session.install("-e", ".")
    session.run("python", "experiments/gpu/benchmark.py", *(session.posargs or ["--out", "experiments/gpu/table.md"]))
