"""The study's storage, and how a trial running in its own job reports its epochs to it.

A sweep's trials run wherever Hydra's launcher puts them (this process, a pool of local workers,
Slurm jobs), so the study's storage is the only thing they share with the sweeper: the sweeper
records in each trial's user attributes what to report and which pruner decides, and passes the
trial to the job as ``trial.{storage,study,number}`` overrides; the job's training loop calls
:func:`report_epoch` after every epoch.
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


def report_epoch(cfg: Mapping[str, Any], stream: str, epoch: int, metrics: Mapping[str, float]) -> None:
    """Report one epoch of ``stream`` to the Optuna trial this run is, if it is one (``cfg.trial``).

    Only the stream and metric the sweeper named are reported (as the trial's intermediate value at
    step ``epoch``). Raises ``optuna.TrialPruned`` when the study's pruner decides the trial is not
    worth finishing; the sweeper then records it as pruned.
    """
    trial_cfg = cfg.get("trial")
    if trial_cfg is None:
        return
    storage = open_storage(trial_cfg["storage"])
    study_id = storage.get_study_id_from_name(trial_cfg["study"])
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial_cfg["number"])
    pruning = storage.get_trial(trial_id).user_attrs.get(PRUNING_ATTR)
    if pruning is None or stream != pruning["stream"]:
        return
    if pruning["metric"] not in metrics:
        raise KeyError(f"the sweep prunes on {pruning['metric']!r}, which {stream} training does not log "
                       f"(it logs {', '.join(metrics)}); set hydra.sweeper.pruning.metric to one of those")
    value = float(metrics[pruning["metric"]])
    study = optuna.load_study(study_name=trial_cfg["study"], storage=storage,
                              pruner=instantiate(pruning["pruner"]))
    trial = optuna.Trial(study, trial_id)
    trial.report(value, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"trial {trial_cfg['number']} of study {trial_cfg['study']!r} pruned after "
                                 f"{stream} epoch {epoch} ({pruning['metric']} = {value:.4f})")
