"""twostream installs as a wheel: the package, its Hydra sweeper and the whole config tree ship in it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, TINY, user_env

# builds and installs a wheel, then runs its commands in subprocesses (287 + 167 + 35 s of the suite on
# 2 loaded cores): the whole suite only
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A wheel built from the repository, installed (without its dependencies) into a folder of its own."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy, so that no stale build/ folder of the checkout slips into the wheel
    for part in ("twostream", "conf"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                    "-w", str(out / "dist")], check=True, capture_output=True, timeout=300)
    [wheel] = (out / "dist").glob("twostream-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(out / "site"),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return out


def test_the_wheel_holds_every_module_and_config_file(installed):
    [wheel] = (installed / "dist").glob("twostream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "twostream").rglob("*.py")
               if "hydra_plugin" not in p.parts}
    assert modules <= names, sorted(modules - names)
    configs = {"twostream/conf/" + p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    assert configs <= names, sorted(configs - names)
    assert "hydra_plugins/twostream_sweeper/__init__.py" in names


def test_the_installed_command_runs_from_an_empty_folder(installed, tmp_path):
    env = user_env(PYTHONPATH=str(installed / "site"))  # before the checkout's editable install
    where = subprocess.run([sys.executable, "-c", "import twostream; print(twostream.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed / "site")), where  # the wheel's copy, not the checkout
    for command in ([sys.executable, "-m", "twostream", "--help"],
                    [str(installed / "site" / "bin" / "twostream"), "+experiment=quickstart", "--cfg", "job"],
                    [sys.executable, "-m", "twostream", "--info", "plugins"]):
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (command, result.stderr[-2000:])
    assert "TwostreamOptunaSweeper" in result.stdout  # the sweeper ships too
    assert list(tmp_path.iterdir()) == []  # nothing was run


def test_the_installed_wheel_runs_the_quickstart_from_an_empty_folder(installed, tmp_path):
    """The whole pipeline (the quickstart at its tiny size) from the wheel's own code and configs."""
    env = user_env(PYTHONPATH=str(installed / "site"))
    result = subprocess.run([str(installed / "site" / "bin" / "twostream"), *TINY, "tracking.mode=disabled"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| fusion_svm |" in result.stdout and (tmp_path / "outputs/tiny/results.json").is_file()
