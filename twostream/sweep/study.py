"""The study's storage, and how a trial running in its own job reports its epochs to it.

A sweep's trials run wherever Hydra's launcher puts them (this process, a pool of local workers,
Slurm jobs), so the study's storage is the only thing they share with the sweeper: the sweeper
records in each trial's user attributes what to report and which pruner decides, and passes the
trial to the job as ``trial.{storage,study,number}`` overrides; the job reports every epoch through
a :class:`TrialReporter` and, when pruned, returns ``{PRUNED_KEY: why}`` instead of its results.
"""

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

log = logging.getLogger(__name__)

PRUNING_ATTR = "pruning"        # trial user attribute: {"stream", "metric", "pruner"} or None
OUTPUT_DIR_ATTR = "output_dir"  # trial user attribute: the trial's paths.output_dir
OBJECTIVE_ATTR = "objective"    # study user attribute: the dotted results key the study optimises


def open_storage(url: str) -> BaseStorage:
    """An RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``) or a journal file path.

    A journal file (Optuna's JournalFileBackend) needs no server and is safe for several worker
    processes on one machine or on a shared file system; an RDB server serves many machines.
    """
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    path = Path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


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
