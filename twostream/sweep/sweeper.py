"""A Hydra sweeper that runs an Optuna study: each trial is one Hydra job, launched by any launcher.

Per batch of ``parallel_trials`` trials it asks the study for parameters (Optuna's ask/tell API),
hands the jobs to the configured Hydra launcher (in this process, joblib workers, Slurm through
submitit) and tells the study each job's objective, read from the dict the task returned.
Re-running the same command continues the study in its storage; several such commands (workers)
may share one study. Configured in ``conf/hydra/sweeper/optuna.yaml``.
"""

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from twostream.errors import ConfigError
from twostream.sweep.space import combinations, format_value, parse_search_space, trial_overrides
from twostream.sweep.study import OBJECTIVE_ATTR, OUTPUT_DIR_ATTR, PRUNED_KEY, PRUNING_ATTR, open_storage

log = logging.getLogger(__name__)

VALIDATION_KEY = "val_accuracy."  # results.json's validation accuracies, by method


class EveryCombinationOnce(optuna.samplers.BruteForceSampler):
    """Optuna's BruteForceSampler (every combination of a finite space once, in random order, taking
    the study's finished and running trials into account) for an ask/tell loop: the sweeper stops
    when the space is used up, so the sampler does not stop the study itself, which Optuna allows
    only inside ``Study.optimize``."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        """Nothing to do after a trial (see the class doc)."""


def tried_combinations(study: optuna.Study, space: Mapping[str, Any]) -> set[tuple]:
    """The parameter combinations of ``space`` that the study's trials ran, run or will run
    (failed ones may be tried again)."""
    keep = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return {tuple(t.params.get(k) for k in space) for t in study.get_trials(deepcopy=False, states=keep)
            if set(space) <= set(t.params)}


def objective_value(returned: Any, key: str) -> float:
    """The number at dotted ``key`` (e.g. ``val_accuracy.temporal``) in what the task returned."""
    if returned is None:
        raise ValueError(f"the job returned no results, so there is no objective {key!r}: the fuse stage "
                         "must run in every trial (stage=all or stage=fuse)")
    node = returned
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            keys = ", ".join(node) if isinstance(node, Mapping) else type(node).__name__
            raise KeyError(f"objective {key!r}: no {part!r} in the job's results (there: {keys}); "
                           "set hydra.sweeper.objective")
        node = node[part]
    if node is None:  # e.g. val_accuracy.fusion_svm when too few validation videos for cross-validation
        raise ValueError(f"objective {key!r} is null in the job's results: the run could not measure it "
                         "(fusion.svm.fit_on=val needs at least fusion.svm.cv_folds validation videos per "
                         "class); choose another hydra.sweeper.objective or a larger dataset.validation")
    return float(node)


class OptunaSweeper(Sweeper):
    """Optuna's ask/tell loop over Hydra jobs; see ``conf/hydra/sweeper/optuna.yaml`` for the settings."""

    def __init__(self, *, study_name: str, storage: str, direction: str, objective: str, n_trials: int,
                 parallel_trials: int, sampler: DictConfig | str, pruner: DictConfig | None,
                 pruning: DictConfig, params: DictConfig | None, seed: int | None = None) -> None:
        super().__init__()
        if n_trials < 1 or parallel_trials < 1:
            raise ValueError(f"hydra.sweeper.n_trials ({n_trials}) and parallel_trials ({parallel_trials}) "
                             "must be at least 1")
        if not objective.startswith(VALIDATION_KEY):
            raise ConfigError(f"hydra.sweeper.objective={objective!r}: a sweep picks its best trial by the "
                              f"objective, so it must be measured on the validation videos, never the test "
                              f"videos: use a {VALIDATION_KEY}<method> key (e.g. {VALIDATION_KEY}fusion_svm)")
        if pruner is not None and not str(pruning.metric).startswith(("val/", "train/")):
            raise ConfigError(f"hydra.sweeper.pruning.metric={pruning.metric!r}: prune on a val/ or train/ metric "
                              "of the train stage (val/accuracy: the validation videos)")
        self.study_name, self.direction, self.objective = study_name, direction, objective
        # A journal file is named by an absolute path, so that jobs started elsewhere find it.
        self.storage = storage if "://" in storage else os.path.abspath(storage)
        self.n_trials, self.parallel_trials = n_trials, parallel_trials
        self.sampler_cfg, self.pruner_cfg, self.pruning, self.seed = sampler, pruner, pruning, seed
        self.params = {str(k): str(v) for k, v in (params or {}).items()}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> optuna.Study:
        """Run ``n_trials`` more trials of the study; command-line sweeps override ``params``."""
        assert self.hydra_context is not None and self.config is not None and self.launcher is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = parse_search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments), parser)
        if not space:
            raise ValueError("the sweep has no search space: give hydra.sweeper.params (or sweep overrides "
                             "such as 'streams.temporal.dropout=choice(0.5,0.9)')")
        if self.config.dataset.get("validation") is None:
            raise ConfigError("dataset.validation=null: a sweep chooses on the validation videos; give the run "
                              "a validation split (dataset.validation.fraction)")
        size = combinations(space)
        study = optuna.create_study(study_name=self.study_name, storage=open_storage(self.storage),
                                    sampler=self._sampler(size), direction=self.direction, load_if_exists=True)
        study.set_user_attr(OBJECTIVE_ATTR, self.objective)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("study %r in %s: %d trials so far, %d more; searching %s", self.study_name, self.storage,
                 len(study.trials), self.n_trials, ", ".join(space))
        pruning = None if self.pruner_cfg is None else {
            "stream": self.pruning.stream, "metric": self.pruning.metric,
            "pruner": OmegaConf.to_container(self.pruner_cfg, resolve=True)}

        launched = 0
        while launched < self.n_trials:
            batch = min(self.parallel_trials, self.n_trials - launched)
            if size is not None:  # a finite space: never a combination twice
                batch = min(batch, size - len(tried_combinations(study, space)))
                if batch <= 0:
                    log.info("every one of the search space's %d combinations has been tried: the study is "
                             "complete", size)
                    break
            trials = [study.ask(space) for _ in range(batch)]
            jobs = []
            for trial in trials:
                output_dir = sweep_dir / f"trial_{trial.number}"
                trial.set_user_attr(PRUNING_ATTR, pruning)
                trial.set_user_attr(OUTPUT_DIR_ATTR, os.path.abspath(output_dir))
                jobs.append(self._job_overrides(trial, fixed, output_dir))
            try:
                self.validate_batch_is_legal(jobs)
            except Exception:
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL)
                raise
            returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number)
            errors = [error for trial, ret in zip(trials, returns, strict=True)
                      if (error := self._tell(study, trial, ret)) is not None]
            if errors:
                raise errors[0]
            launched += len(trials)
        self._log_best(study)
        return study

    def _sampler(self, size: int | None) -> optuna.samplers.BaseSampler:
        """``sampler: auto``: each combination once (in random order) for a finite space, else TPE;
        any other value is a sampler config to instantiate."""
        if self.sampler_cfg != "auto":
            return instantiate(self.sampler_cfg)
        if size is None:
            return optuna.samplers.TPESampler(seed=self.seed)
        with warnings.catch_warnings():  # BruteForceSampler is marked experimental; its contract suffices here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return EveryCombinationOnce(seed=self.seed)

    def _job_overrides(self, trial: optuna.Trial, fixed: Sequence[str], output_dir: Path) -> list[str]:
        """The trial's overrides: fixed ones, its parameters, where it reports and its folder."""
        return [*fixed, *trial_overrides(trial.params),
                f"++trial.storage={format_value(self.storage)}", f"++trial.study={format_value(self.study_name)}",
                f"++trial.number={trial.number}",
                # The job's folder (paths.output_dir) is named after the trial, not the launcher's job
                # number, which restarts at 0 in every sweep command and would make a re-run or a second
                # worker resume another trial's checkpoint.
                f"hydra.sweep.subdir={output_dir.name}"]

    def _tell(self, study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> BaseException | None:
        """Record the job's outcome in the study; return the job's error if it failed."""
        try:
            returned = ret.return_value  # re-raises a failed job's error
            if isinstance(returned, Mapping) and PRUNED_KEY in returned:
                study.tell(trial, state=TrialState.PRUNED)
                log.info("trial %d pruned: %s", trial.number, returned[PRUNED_KEY])
                return None
            value = objective_value(returned, self.objective)
        except Exception as error:
            study.tell(trial, state=TrialState.FAIL)
            log.error("trial %d failed: %s", trial.number, error)
            return error
        study.tell(trial, value)
        log.info("trial %d: %s = %.4f  %s", trial.number, self.objective, value, trial.params)
        return None

    def _log_best(self, study: optuna.Study) -> None:
        if any(t.state == TrialState.COMPLETE for t in study.trials):
            best = study.best_trial
            log.info("best of %d trials: trial %d, %s = %.4f, %s", len(study.trials), best.number,
                     self.objective, best.value, best.params)
