"""Sweeps that lose nothing when a worker dies, on a journal file and on a real PostgreSQL server.

The sweep commands here run the real sweeper in their own processes (tests/sweep_stub.py: the
Hydra app of ``python -m twostream`` with a job that only sleeps), so that a test can SIGKILL one
mid-trial as a cluster would. Heartbeats every second, a dead worker's trial found after 3 s.
"""

import itertools
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from postgres_server import Unavailable, throwaway_server
from test_sweep import _Launcher, _sweeper

from twostream.sweep.space import format_value, pick_untried
from twostream.sweep.study import (
    HEARTBEAT_ATTR,
    HeartbeatJournalStorage,
    Liveness,
    RetryLostTrialOnce,
    open_storage,
)
from twostream.sweep.sweeper import DUPLICATE_ATTR, ERROR_ATTR, fail_lost_trials, is_lost, tried_combinations

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "tests" / "sweep_stub.py"
LS, DROPOUTS = (1, 2), (0.5, 0.9)
SPACE = ["streams.temporal.L=choice(1,2)", "streams.temporal.dropout=choice(0.5,0.9)",
         "streams.temporal.stacking=optical_flow", "streams.temporal.mean_subtraction=true"]
EVERY_COMBINATION = sorted(itertools.product(LS, DROPOUTS))


@pytest.fixture(scope="module")
def postgres_url():
    """The throwaway server's URL (no password in it: every client, the sweeps started here too,
    reads it from the file PGPASSFILE names)."""
    try:
        with throwaway_server() as server, pytest.MonkeyPatch.context() as patch:
            patch.setenv("PGPASSFILE", server.passfile)
            yield server.url
    except Unavailable as why:
        pytest.skip(f"no throwaway PostgreSQL server: {why}")


@pytest.fixture(params=["journal", "postgresql"])
def storage_url(request, tmp_path):
    """Where the study lives: a journal file, or the throwaway server (one study name per test)."""
    if request.param == "journal":
        return str(tmp_path / "study.journal")
    return request.getfixturevalue("postgres_url")


class Sweep:
    """One sweep command (a worker) of the stub study, run in ``cwd``; jobs log into ``cwd/jobs``."""

    def __init__(self, cwd: Path, storage: str, study: str) -> None:
        self.cwd, self.storage, self.study, self.log = cwd, storage, study, cwd / "jobs"
        self.log.mkdir(exist_ok=True)

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "STUB_"))}
        environment |= {"PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1",
                        "STUB_LOG": str(self.log), "STUB_SECONDS": "0.2", **env}
        command = [sys.executable, str(STUB), "-m", "+experiment=sweep_temporal", f"name={self.study}",
                   f"hydra.sweeper.storage={format_value(self.storage)}", "hydra.sweeper.n_trials=20",
                   "hydra.sweeper.heartbeat.interval=1", "hydra.sweeper.heartbeat.grace_period=3",
                   "hydra.sweeper.pruner=null", "tracking.mode=disabled", *SPACE, *args]
        return subprocess.Popen(command, cwd=self.cwd, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def run(self, **env: str) -> str:
        worker = self.start(**env)
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output[-3000:]
        return output

    def hung_trial(self, timeout: float = 60) -> tuple[int, int]:
        """(trial number, pid) of the trial that hangs, once it has started."""
        deadline = time.monotonic() + timeout
        while not (self.log / "hang").exists() or not (self.log / "hang").read_text():
            assert time.monotonic() < deadline, "no trial started within a minute"
            time.sleep(0.1)
        number, pid = (self.log / "hang").read_text().split()
        return int(number), int(pid)

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        storage = self.storage if "://" in self.storage else optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(self.storage))
        return optuna.load_study(study_name=self.study, storage=storage).trials


def combo(trial) -> tuple:
    return trial.params["streams.temporal.L"], trial.params["streams.temporal.dropout"]


def assert_every_combination_finished_once(trials) -> None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(combo(t) for t in complete) == EVERY_COMBINATION  # none lost, none doubled
    assert all(t.value == pytest.approx(sum(combo(t))) for t in complete)  # the stub's objective
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def assert_recorded_as_lost_and_retried(trials, dead: int) -> None:
    assert trials[dead].state == TrialState.FAIL and is_lost(trials[dead])
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == dead]
    assert retry.state == TrialState.COMPLETE and combo(retry) == combo(trials[dead])


@pytest.mark.slow  # real sweep processes killed and rerun: 5-7 s each on an idle 2-core CPU
def test_a_killed_sweep_command_is_recovered_by_running_it_again(tmp_path, storage_url):
    sweep = Sweep(tmp_path, storage_url, "killed_alone")
    worker = sweep.start(STUB_HANG="1")
    dead, pid = sweep.hung_trial()
    assert pid == worker.pid  # the basic launcher runs a job in the sweeping process itself
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert [t.state for t in sweep.trials() if t.number == dead] == [TrialState.RUNNING]  # what it leaves
    output = sweep.run()  # the same command again
    trials = sweep.trials()
    assert_every_combination_finished_once(trials)
    assert_recorded_as_lost_and_retried(trials, dead)
    assert f"trial {dead} lost its worker" in output


@pytest.mark.slow  # real sweep processes killed and rerun: 5-7 s each on an idle 2-core CPU
def test_two_workers_at_once_one_killed_mid_trial_finish_every_combination_once(tmp_path, storage_url):
    """Two sweep commands start at once on one study (they race for the first combinations); one is
    killed mid-trial; the other runs the rest, finds the dead trial after the grace period and runs
    its combination again: nothing lost, nothing run twice."""
    sweep = Sweep(tmp_path, storage_url, "two_workers")
    workers = [sweep.start(STUB_HANG="1"), sweep.start(STUB_HANG="1")]
    dead, pid = sweep.hung_trial()
    [victim] = [w for w in workers if w.pid == pid]
    [survivor] = [w for w in workers if w is not victim]
    victim.send_signal(signal.SIGKILL)
    output, _ = survivor.communicate(timeout=120)  # it waits for the dead trial to go stale, then runs it
    assert survivor.returncode == 0, output[-3000:]
    trials = sweep.trials()
    assert_every_combination_finished_once(trials)
    assert_recorded_as_lost_and_retried(trials, dead)
    again = sweep.run()  # the same command once more finds the study complete
    assert len(sweep.trials()) == len(trials), again[-2000:]


def test_a_trial_that_fails_on_its_own_is_recorded_and_not_retried(tmp_path):
    sweep = Sweep(tmp_path, str(tmp_path / "study.journal"), "failing")
    worker = sweep.start(STUB_FAIL="1")
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode != 0 and "failed on purpose" in output
    [trial] = sweep.trials()  # the sweep stopped at the error: no retry was queued
    assert trial.state == TrialState.FAIL and "failed on purpose" in trial.user_attrs[ERROR_ATTR]
    assert not is_lost(trial)


def test_a_trial_lost_twice_is_given_up(tmp_path):
    """The journal's heartbeat finds a stale trial, fails it and queues its retry; a retry lost too
    (a setting that kills its worker) is not queued again."""
    storage = HeartbeatJournalStorage(str(tmp_path / "s.journal"), Liveness(1, 2, RetryLostTrialOnce()))
    study = optuna.create_study(study_name="s", storage=storage)
    warnings.simplefilter("ignore", UserWarning)  # "Heartbeat ... supposed to be used with Study.optimize"
    dist = {"x": optuna.distributions.CategoricalDistribution([1, 2])}
    first = study.ask(dist)
    storage.set_trial_system_attr(first._trial_id, HEARTBEAT_ATTR, time.time() - 2.5)  # beat 2.5 s ago
    fresh = study.ask({"y": optuna.distributions.CategoricalDistribution([0])})
    storage.record_heartbeat(fresh._trial_id)  # beats now: alive
    fail_lost_trials(study)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    retry = study.ask(dist)  # the queued retry: the same parameters
    assert retry.number == 2 and retry.params == first.params
    storage.set_trial_system_attr(retry._trial_id, HEARTBEAT_ATTR, time.time() - 2.5)
    assert tried_combinations(study, dist) == {(first.params["x"],)}  # running again
    fail_lost_trials(study)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL]
    assert tried_combinations(study, dist) == {(first.params["x"],)}  # given up, not run a third time


def test_the_server_wants_a_password_that_the_url_does_not_hold(postgres_url, monkeypatch, tmp_path):
    """The sweeps above reached the server through the password file alone (docs/sweeps.md)."""
    import sqlalchemy

    assert "postgres@/" in postgres_url  # a user, no password
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass either
    with pytest.raises(sqlalchemy.exc.OperationalError, match="password"):
        sqlalchemy.create_engine(postgres_url).connect().close()


# In-process: the sweeper with a launcher that runs nothing (tests/test_sweep.py's), on a journal.

A_B = sorted(itertools.product((1, 2), ("x", "y")))


def _combos(trials, state=TrialState.COMPLETE):
    return sorted((t.params["a"], t.params["b"]) for t in trials if t.state == state)


def test_two_trials_holding_one_combination_run_it_once(tmp_path):
    """What two workers adding one combination at the same moment leave: two waiting trials of it.
    The higher-numbered one yields to the other instead of running it a second time."""
    storage = open_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    dists = {"a": CategoricalDistribution([1, 2]), "b": CategoricalDistribution(["x", "y"])}
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params={"a": 1, "b": "x"},
                                                  distributions=dists))
    launcher = _Launcher()
    trials = _sweeper(tmp_path, launcher, n_trials=10).sweep([]).trials
    assert _combos(trials) == A_B and len(launcher.launched) == 4
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs[DUPLICATE_ATTR] == 0


class _Interrupted(_Launcher):
    def launch(self, jobs, initial_job_idx):
        raise KeyboardInterrupt


def test_ctrl_c_fails_and_requeues_the_batch_at_once(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _sweeper(tmp_path, _Interrupted(), n_trials=10).sweep([])  # 3 trials at once
    study = optuna.load_study(study_name="s", storage=open_storage(str(tmp_path / "s.journal")))
    lost = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(lost) == 3 and all(is_lost(t) for t in lost)
    queued = [t for t in study.trials if t.state == TrialState.WAITING]  # no grace period to wait for
    assert sorted(t.system_attrs["failed_trial"] for t in queued) == [t.number for t in lost]
    trials = _sweeper(tmp_path, _Launcher(), n_trials=10).sweep([]).trials  # the same command again
    assert _combos(trials) == A_B
    assert {t.system_attrs.get("failed_trial") for t in trials if t.state == TrialState.COMPLETE} >= \
        {t.number for t in lost}


class _LateWorker(_Launcher):
    """Its first batch's trials are failed as lost by another worker while they run (heartbeats that
    came too late), yet their jobs complete."""

    def __init__(self, storage_path):
        super().__init__()
        self.storage_path = storage_path

    def launch(self, jobs, initial_job_idx):
        if not self.launched:
            storage = open_storage(self.storage_path)
            study_id = storage.get_study_id_from_name("s")
            for job in jobs:
                number = int(next(o for o in job if o.startswith("++trial.number=")).split("=")[1])
                storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, number),
                                               TrialState.FAIL)
        return super().launch(jobs, initial_job_idx)


def test_a_result_that_comes_after_its_trial_was_failed_as_lost_is_not_counted(tmp_path):
    trials = _sweeper(tmp_path, _LateWorker(str(tmp_path / "s.journal")), n_trials=10).sweep([]).trials
    assert [t.state for t in trials[:3]] == [TrialState.FAIL] * 3  # their late results were not told
    assert _combos(trials) == A_B  # their combinations ran again


def test_untried_combinations_are_drawn_until_none_is_left():
    rng, tried = random.Random(0), {(9, "z")}  # a trial of an earlier space: off this grid, not counted
    for _ in range(4):
        tried.add(pick_untried([[1, 2], ["x", "y"]], tried, rng))
    assert tried - {(9, "z")} == set(A_B) and pick_untried([[1, 2], ["x", "y"]], tried, rng) is None
    big = [list(range(400)), list(range(400))]  # 160,000 combinations: drawn, not listed
    taken = {(a, b) for a in range(400) for b in range(399)}
    assert pick_untried(big, taken, rng)[1] == 399
