"""The study's storage, and how a trial running in its own job reports its epochs to it.

A sweep's trials run wherever Hydra's launcher puts them (this process, a pool of local workers,
Slurm jobs), so the study's storage is the only thing they share with the sweeper: the sweeper
records in each trial's user attributes what to report and which pruner decides, and passes the
trial to the job as ``trial.{storage,study,number}`` overrides; the job reports every epoch through
a :class:`TrialReporter` and, when pruned, returns ``{PRUNED_KEY: why}`` instead of its results.
"""

import logging
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.storages import BaseStorage, JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # the contract optuna.storages.fail_stale_trials reads
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

PRUNING_ATTR = "pruning"        # trial user attribute: {"stream", "metric", "pruner"} or None
OUTPUT_DIR_ATTR = "output_dir"  # trial user attribute: the trial's paths.output_dir
OBJECTIVE_ATTR = "objective"    # study user attribute: the dotted results key the study optimises


HEARTBEAT_ATTR = "twostream:heartbeat"  # trial system attribute in a journal: the last beat (Unix time)
StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


@dataclass(frozen=True)
class Liveness:
    """How a sweep tells a dead worker's trial from a running one: the worker records a heartbeat
    every ``interval`` seconds while the trial runs; a RUNNING trial with no beat for
    ``grace_period`` seconds is failed by the next sweeper that looks, and ``on_stale`` runs."""

    interval: int
    grace_period: int
    on_stale: StaleCallback | None = None


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal file with Optuna's heartbeat, which Optuna gives RDBStorage only.

    A beat is a trial system attribute holding the writer's clock (one journal line per beat), so
    the workers' clocks must agree to well within the grace period (NTP does). A RUNNING trial that
    never beat (a sweeper older than this one) counts from its start.
    """

    def __init__(self, path: str, liveness: Liveness) -> None:
        super().__init__(JournalFileBackend(path))
        self.liveness = liveness

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        deadline = time.time() - self.liveness.grace_period
        return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if t.system_attrs.get(HEARTBEAT_ATTR, t.datetime_start.timestamp()) < deadline]

    def get_heartbeat_interval(self) -> int:
        return self.liveness.interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self.liveness.on_stale


def open_storage(url: str, liveness: Liveness | None = None) -> BaseStorage:
    """An RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``) or a journal file path.

    A journal file (Optuna's JournalFileBackend) needs no server and is safe for several worker
    processes on one machine or on a shared file system; an RDB server serves many machines.
    With ``liveness`` (the sweeper's storage) the storage records heartbeats and finds stale trials
    (:func:`optuna.storages.fail_stale_trials`); a job reporting its epochs needs none.
    """
    if "://" in url:
        return _open_database(url, liveness)
    path = Path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    if liveness is None:
        return JournalStorage(JournalFileBackend(str(path)))
    return HeartbeatJournalStorage(str(path), liveness)


SCHEMA_ATTEMPTS = 3


def _open_database(url: str, liveness: Liveness | None) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage; tried again when a worker started at the same moment created the tables
    first (Optuna's table creation is not safe against that: PostgreSQL then refuses a duplicate type)."""
    import sqlalchemy.exc  # Optuna's dependency; only a database storage needs it

    heartbeat = {} if liveness is None else {"heartbeat_interval": liveness.interval,
                                             "grace_period": liveness.grace_period,
                                             "heartbeat_stale_trial_callback": liveness.on_stale}
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():  # the heartbeat arguments are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **heartbeat)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


class RetryLostTrialOnce(RetryHeartbeatStaleTrialCallback):
    """Run a lost trial's parameters again as a new WAITING trial, once: a trial whose retry is lost
    too (a setting that kills its worker, e.g. out of memory) is not retried again."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(max_retry=1)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if history := trial.system_attrs.get("retry_history"):  # what retry_history() reads
            log.warning("trial %d (a retry of trial %d) lost its worker too: its parameters %s are given up",
                        trial.number, history[0], trial.params)
        else:
            log.warning("trial %d lost its worker (killed, or no heartbeat): failed; its parameters %s run again",
                        trial.number, trial.params)
        super().__call__(study, trial)


PRUNED_KEY = "pruned"            # a pruned trial's job returns {PRUNED_KEY: why} instead of results


class TrialReporter:
    """The Optuna trial that one sweep job is: it reports one stream's per-epoch metric to the study.

    Built once per job from the job's ``trial`` config (the storage is opened once, not per
    epoch). Only the stream and metric the sweeper named are reported (as the trial's
    intermediate value at step ``epoch``); :meth:`report` raises ``optuna.TrialPruned`` when the
    study's pruner decides the trial is not worth finishing.
    """

    def __init__(self, trial_cfg: Mapping[str, Any]) -> None:
        storage = open_storage(trial_cfg["storage"])
        self.study_name, self.number = trial_cfg["study"], trial_cfg["number"]
        study_id = storage.get_study_id_from_name(self.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        self.pruning = storage.get_trial(trial_id).user_attrs.get(PRUNING_ATTR)
        self._trial = None
        if self.pruning is not None:
            study = optuna.load_study(study_name=self.study_name, storage=storage,
                                      pruner=instantiate(self.pruning["pruner"]))
            self._trial = optuna.Trial(study, trial_id)

    def report(self, stream: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """Report ``stream``'s ``epoch`` if it is the one the sweep prunes on; raise TrialPruned if pruned."""
        if self._trial is None or stream != self.pruning["stream"]:
            return
        metric = self.pruning["metric"]
        if metric not in metrics:
            raise KeyError(f"the sweep prunes on {metric!r}, which {stream} training does not log "
                           f"(it logs {', '.join(metrics)}); set hydra.sweeper.pruning.metric to one of those")
        value = float(metrics[metric])
        self._trial.report(value, epoch)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.number} of study {self.study_name!r} pruned after "
                                     f"{stream} epoch {epoch} ({metric} = {value:.4f})")


def trial_reporter(trial_cfg: Mapping[str, Any] | None) -> TrialReporter | None:
    """The reporter of the trial a job is (its ``trial`` config), or None outside a sweep."""
    return None if trial_cfg is None else TrialReporter(trial_cfg)
