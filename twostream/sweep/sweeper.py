"""A Hydra sweeper that runs an Optuna study: each trial is one Hydra job, launched by any launcher.

Per batch of ``parallel_trials`` trials it asks the study for parameters (Optuna's ask/tell API),
hands the jobs to the configured Hydra launcher (in this process, joblib workers, Slurm through
submitit) and tells the study each job's objective, read from the dict the task returned.
Re-running the same command continues the study in its storage; several such commands (workers)
may share one study. A worker records a heartbeat of the trials it runs; a trial whose worker died
is failed by the next worker that looks and its parameters run again, once. A finite space runs
each combination once across all workers. Configured in ``conf/hydra/sweeper/optuna.yaml``; the
user's side is in docs/sweeps.md.
"""

import contextlib
import logging
import math
import os
import random
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
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
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from twostream.errors import ConfigError
from twostream.sweep.space import format_value, grid_axes, parse_search_space, pick_untried, trial_overrides
from twostream.sweep.study import (
    OBJECTIVE_ATTR,
    OUTPUT_DIR_ATTR,
    PRUNED_KEY,
    PRUNING_ATTR,
    Liveness,
    RetryLostTrialOnce,
    open_storage,
)

log = logging.getLogger(__name__)

VALIDATION_KEY = "val_accuracy."  # results.json's validation accuracies, by method
WORKER_ATTR = "worker"            # trial user attribute: host:pid of the sweep command that runs it
ERROR_ATTR = "error"              # trial user attribute: why a trial failed on its own (not retried)
DUPLICATE_ATTR = "duplicate_of"   # trial user attribute: the trial that already held its combination
LOSSES_TO_GIVE_UP = 2             # a combination whose worker died this often is not run again
HELD = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def combination(trial: FrozenTrial, space: Mapping[str, Any]) -> tuple | None:
    """The trial's values of ``space``'s keys, or None if it does not have them all."""
    return tuple(trial.params[k] for k in space) if set(space) <= set(trial.params) else None


def is_lost(trial: FrozenTrial) -> bool:
    """Whether a failed trial failed because its worker died (not because of an error or a duplicate)."""
    return (trial.state == TrialState.FAIL and ERROR_ATTR not in trial.user_attrs
            and DUPLICATE_ATTR not in trial.user_attrs)


def tried_combinations(study: optuna.Study, space: Mapping[str, Any]) -> set[tuple]:
    """The combinations of ``space`` that the study's trials ran, run or will run, and those given up
    (their worker died twice: a setting that kills its worker, e.g. out of memory). A combination
    that failed with an error, or that lost its worker once, is not tried: a rerun runs it again."""
    tried, losses = set(), Counter()
    for trial in study.get_trials(deepcopy=False):
        if (combo := combination(trial, space)) is None:
            continue
        if trial.state in HELD:
            tried.add(combo)
        elif is_lost(trial):
            losses[combo] += 1
    return tried | {combo for combo, n in losses.items() if n >= LOSSES_TO_GIVE_UP}


def fail_lost_trials(study: optuna.Study) -> None:
    """Fail the study's trials whose worker stopped beating (and run their parameters again, once)."""
    with warnings.catch_warnings():  # fail_stale_trials is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def ask(study: optuna.Study, space: Mapping[str, Any]) -> optuna.Trial:
    """``study.ask(space)``, which pops a lost trial's retry first; the sweeper beats for the trial
    itself, so Optuna's warning that heartbeats need ``Study.optimize`` does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed", UserWarning)
        return study.ask(space)


@contextlib.contextmanager
def heartbeats(storage: BaseStorage, trial_ids: Sequence[int], interval: float) -> Iterator[None]:
    """Record a heartbeat of each trial every ``interval`` seconds while the block runs (the trials'
    jobs), so that other sweepers can tell them from the trials of a worker that died."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            for trial_id in trial_ids:
                try:
                    storage.record_heartbeat(trial_id)
                except UpdateFinishedTrialError:
                    pass  # told already
                except Exception as error:  # a storage hiccup must not end the beating
                    log.warning("could not record trial heartbeat: %s", error)

    thread = threading.Thread(target=beat, name="trial heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
                 pruning: DictConfig, params: DictConfig | None, heartbeat: DictConfig,
                 seed: int | None = None) -> None:
        super().__init__()
        if n_trials < 1 or parallel_trials < 1:
            raise ValueError(f"hydra.sweeper.n_trials ({n_trials}) and parallel_trials ({parallel_trials}) "
                             "must be at least 1")
        if not 1 <= heartbeat.interval < heartbeat.grace_period:
            raise ConfigError(f"hydra.sweeper.heartbeat: interval ({heartbeat.interval} s) must be at least 1 and "
                              f"below grace_period ({heartbeat.grace_period} s), or every trial looks dead")
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
        self.liveness = Liveness(int(heartbeat.interval), int(heartbeat.grace_period), RetryLostTrialOnce())
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
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
        axes = grid_axes(space)
        claim_combinations = axes is not None and self.sampler_cfg == "auto"
        storage = open_storage(self.storage, self.liveness)
        study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=self._sampler(axes),
                                    direction=self.direction, load_if_exists=True)
        study.set_user_attr(OBJECTIVE_ATTR, self.objective)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("study %r in %s: %d trials so far, %d more; searching %s", self.study_name, self.storage,
                 len(study.trials), self.n_trials, ", ".join(space))
        pruning = None if self.pruner_cfg is None else {
            "stream": self.pruning.stream, "metric": self.pruning.metric,
            "pruner": OmegaConf.to_container(self.pruner_cfg, resolve=True)}

        rng = random.Random(self.seed)
        launched, waiting_for = 0, []
        while launched < self.n_trials:
            fail_lost_trials(study)  # before asking: a dead worker's trial is run again, not counted as tried
            batch = min(self.parallel_trials, self.n_trials - launched)
            if claim_combinations:
                trials = self._claim_combinations(study, storage, space, axes, batch, rng)
            else:
                if axes is not None:  # a finite space with a sampler of the user's: never more trials than it holds
                    batch = min(batch, math.prod(len(axis) for axis in axes) - len(tried_combinations(study, space)))
                trials = [self._start(study, storage, ask(study, space)) for _ in range(max(batch, 0))]
            if trials:
                self._run_batch(study, storage, trials, fixed, sweep_dir, pruning)
                launched += len(trials)
                continue
            running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if WORKER_ATTR in t.user_attrs]
            if not (running and claim_combinations):
                log.info("every one of the search space's combinations has been tried: the study is complete")
                break
            # Another worker's trial may still die; then its combination is this worker's to run.
            if running != waiting_for:
                log.info("every combination is tried or taken; waiting for trials %s of other workers to finish "
                         "(or to be found dead %d s after their last heartbeat)", running, self.liveness.grace_period)
                waiting_for = running
            time.sleep(self.liveness.interval)
        self._log_best(study)
        return study

    def _run_batch(self, study: optuna.Study, storage: BaseStorage, trials: list[optuna.Trial], fixed: Sequence[str],
                   sweep_dir: Path, pruning: dict[str, Any] | None) -> None:
        """Launch the trials' jobs, beating for them while they run, and tell the study their outcome;
        raise the first job's error."""
        jobs = []
        for trial in trials:
            output_dir = sweep_dir / f"trial_{trial.number}"
            trial.set_user_attr(PRUNING_ATTR, pruning)
            trial.set_user_attr(OUTPUT_DIR_ATTR, os.path.abspath(output_dir))
            jobs.append(self._job_overrides(trial, fixed, output_dir))
        try:
            self.validate_batch_is_legal(jobs)
        except Exception as error:
            for trial in trials:
                self._fail(study, trial, error)
            raise
        try:
            with heartbeats(storage, [t._trial_id for t in trials], self.liveness.interval):
                returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number)
        except BaseException:  # Ctrl-C, or a launcher that lost its jobs: as if their worker died
            for trial in trials:
                self._lose(study, storage, trial)
            raise
        errors = [error for trial, ret in zip(trials, returns, strict=True)
                  if (error := self._tell(study, trial, ret)) is not None]
        if errors:
            raise errors[0]

    def _start(self, study: optuna.Study, storage: BaseStorage, trial: optuna.Trial) -> optuna.Trial:
        """Mark a trial this worker's: its first heartbeat (before anything can kill it) and who runs it."""
        storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr(WORKER_ATTR, self.worker)
        return trial

    def _claim_combinations(self, study: optuna.Study, storage: BaseStorage, space: Mapping[str, Any],
                            axes: list[list[Any]], batch: int, rng: random.Random) -> list[optuna.Trial]:
        """Up to ``batch`` trials of combinations no trial holds, each claimed by this worker alone.

        A combination is claimed by adding it as a WAITING trial (its parameters written with it,
        in one step) and taking a waiting trial (this worker's or a lost trial's retry) into
        RUNNING, which the storage lets only one worker do. Two workers that add one combination at
        the same moment both see the lower-numbered trial (trial numbers are given in the storage's
        order of writes), so the higher one yields: no combination runs twice.
        """
        study_id = storage.get_study_id_from_name(study.study_name)
        claimed: list[optuna.Trial] = []
        while len(claimed) < batch:
            waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if not waiting:
                combo = pick_untried(axes, tried_combinations(study, space), rng)
                if combo is None:
                    break
                study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=dict(zip(space, combo, strict=True)),
                                                          distributions=dict(space)))
                continue
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, waiting[0].number)
            try:
                if not storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    continue  # another worker took it first
            except UpdateFinishedTrialError:
                continue
            trial = self._start(study, storage, optuna.Trial(study, trial_id))
            combo = combination(storage.get_trial(trial_id), space)
            if combo is None:  # e.g. a retry of a trial of an earlier, other search space
                self._fail(study, trial, ValueError(f"its parameters {trial.params} do not cover the search space"))
                continue
            holder = next((t.number for t in study.get_trials(deepcopy=False, states=HELD)
                           if t.number < trial.number and combination(t, space) == combo), None)
            if holder is not None:
                trial.set_user_attr(DUPLICATE_ATTR, holder)
                study.tell(trial, state=TrialState.FAIL)
                log.info("trial %d yields its parameters to trial %d, which holds them already", trial.number, holder)
                continue
            claimed.append(trial)
        return claimed

    def _sampler(self, axes: list[list[Any]] | None) -> optuna.samplers.BaseSampler:
        """``sampler: auto``: TPE for a space that is not finite; a finite one is claimed combination by
        combination in random order (:meth:`_claim_combinations`), so its sampler is never asked.
        Any other value is a sampler config to instantiate."""
        if self.sampler_cfg != "auto":
            return instantiate(self.sampler_cfg)
        if axes is None:
            return optuna.samplers.TPESampler(seed=self.seed)
        return optuna.samplers.RandomSampler(seed=self.seed)

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
                self._finish(study, trial, state=TrialState.PRUNED)
                log.info("trial %d pruned: %s", trial.number, returned[PRUNED_KEY])
                return None
            value = objective_value(returned, self.objective)
        except Exception as error:
            self._fail(study, trial, error)
            log.error("trial %d failed: %s", trial.number, error)
            return error
        if self._finish(study, trial, value):
            log.info("trial %d: %s = %.4f  %s", trial.number, self.objective, value, trial.params)
        return None

    def _finish(self, study: optuna.Study, trial: optuna.Trial, value: float | None = None,
                state: TrialState | None = None) -> bool:
        """Tell the study; False if another worker had already found the trial lost (its heartbeat
        stopped past the grace period while it ran) and run its parameters again."""
        try:
            study.tell(trial, value, state=state)
            return True
        except (UpdateFinishedTrialError, ValueError):  # ValueError: "Cannot tell a FAIL trial."
            if study.trials[trial.number].state == TrialState.RUNNING:
                raise
            log.warning("trial %d finished, but another worker had failed it as lost meanwhile (heartbeats "
                        "late by over %d s): its retry counts, not this result", trial.number,
                        self.liveness.grace_period)
            return False

    def _fail(self, study: optuna.Study, trial: optuna.Trial, error: BaseException) -> None:
        """A trial that failed on its own: recorded with its error and not retried by this command."""
        with contextlib.suppress(UpdateFinishedTrialError):
            trial.set_user_attr(ERROR_ATTR, f"{type(error).__name__}: {error}"[:1000])
        self._finish(study, trial, state=TrialState.FAIL)

    def _lose(self, study: optuna.Study, storage: BaseStorage, trial: optuna.Trial) -> None:
        """A trial whose job this worker lost (Ctrl-C, the launcher failed): failed and retried at
        once, as a dead worker's trial is after the grace period."""
        try:
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                self.liveness.on_stale(study, storage.get_trial(trial._trial_id))
        except UpdateFinishedTrialError:
            pass  # told, or found lost by another worker, already
        except Exception as error:  # the process is going down anyway: the heartbeat's absence will tell
            log.warning("could not record trial %d as lost: %s", trial.number, error)

    def _log_best(self, study: optuna.Study) -> None:
        if any(t.state == TrialState.COMPLETE for t in study.trials):
            best = study.best_trial
            log.info("best of %d trials: trial %d, %s = %.4f, %s", len(study.trials), best.number,
                     self.objective, best.value, best.params)
