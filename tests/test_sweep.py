"""The Optuna sweeper: search spaces, reporting epochs to a trial, and real multiruns on the command line."""

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
import torch
from conftest import REPO, TINY_DATASET, user_env
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from wandb_offline import find_runs, read_offline_run

from twostream.sweep.space import format_value, parse_search_space
from twostream.sweep.study import PRUNING_ATTR, TrialReporter, trial_reporter
from twostream.sweep.sweeper import OptunaSweeper, objective_value

# The temporal stream alone on the smallest synthetic set, one epoch: a trial takes a few seconds.
TINY_SWEEP = [
    "+experiment=sweep_temporal", "name=tiny_sweep", "progress=false", *TINY_DATASET,
    "streams.temporal.epochs=1", "train.samples_per_video=1", "train.runtime.val_positions=1",
    "test.num_positions=1", "test.crops=1", "streams.temporal.L=choice(2,3)",
]
SEARCHED = {"streams.temporal.stacking", "streams.temporal.L", "streams.temporal.mean_subtraction",
            "streams.temporal.dropout"}


def parse(lines):
    return parse_search_space(lines, OverridesParser.create())


def test_sweep_forms_become_optuna_distributions():
    space, fixed = parse(["a=choice(0.5, 0.9)", "b=range(2, 11, 4)", "c=interval(0.1, 1.0)",
                          "d=tag(log, interval(1e-4, 1e-1))", "e=tag(int, interval(1, 8))", "f=x,y", "g=3", "+h=on"])
    assert space == {"a": CategoricalDistribution([0.5, 0.9]), "b": IntDistribution(2, 10, step=4),
                     "c": FloatDistribution(0.1, 1.0), "d": FloatDistribution(1e-4, 1e-1, log=True),
                     "e": IntDistribution(1, 8), "f": CategoricalDistribution(["x", "y"])}
    assert fixed == ["g=3", "+h=on"]


def test_later_lines_win_so_the_command_line_overrides_the_configured_space():
    space, fixed = parse(["a=choice(1, 2)", "b=choice(x, y)", "a=5", "b=choice(z)"])
    assert space == {"b": CategoricalDistribution(["z"])} and fixed == ["a=5"]


def test_unusable_spaces_are_refused():
    with pytest.raises(ValueError, match="numbers, strings"):
        parse(["a=choice([1, 2], [3])"])
    with pytest.raises(ValueError, match="glob"):
        parse(["model=glob(*)"])


@pytest.mark.parametrize("value", ["optical_flow", "10", "true", "null", "it's", "a b", r"back\slash",
                                   "postgresql://user:p@ss@host:5432/db?x=1&y=2", 0.5, 1e-5, 3, True, None])
def test_sampled_values_parse_back_as_themselves(value):
    override = OverridesParser.create().parse_override(f"key={format_value(value)}")
    assert override.value() == value and type(override.value()) is type(value)


def test_objective_is_read_from_the_returned_results():
    results = {"val_accuracy": {"temporal": 0.25, "fusion_svm": 0.5}}
    assert objective_value(results, "val_accuracy.temporal") == 0.25
    with pytest.raises(KeyError, match="'spatial'.*temporal, fusion_svm"):
        objective_value(results, "val_accuracy.spatial")
    with pytest.raises(ValueError, match="fuse stage"):
        objective_value(None, "val_accuracy.temporal")
    with pytest.raises(ValueError, match="is null.*cv_folds"):
        objective_value({"val_accuracy": {"fusion_svm": None}}, "val_accuracy.fusion_svm")


def _study_with_one_finished_trial(tmp_path, pruner):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    done = study.ask()
    for epoch, value in enumerate([0.5, 0.6, 0.7], start=1):
        done.report(value, epoch)
    study.tell(done, 0.7)
    trial = study.ask()
    trial.set_user_attr(PRUNING_ATTR, {"stream": "temporal", "metric": "val/accuracy", "pruner": pruner})
    return study, trial, TrialReporter({"storage": str(tmp_path / "study.journal"), "study": "s",
                                        "number": trial.number})


def test_the_reporter_reports_through_the_storage_and_prunes_a_worse_trial(tmp_path):
    pruner = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0}
    study, trial, reporter = _study_with_one_finished_trial(tmp_path, pruner)
    reporter.report("spatial", 1, {"val/accuracy": 0.0})  # another stream: not reported
    reporter.report("temporal", 1, {"val/accuracy": 0.55, "train/loss": 1.0})  # above the median
    with pytest.raises(optuna.TrialPruned, match="epoch 2"):
        reporter.report("temporal", 2, {"val/accuracy": 0.1})  # below the finished trial's 0.6
    assert study.trials[trial.number].intermediate_values == {1: 0.55, 2: 0.1}


def test_the_reporter_names_a_metric_that_training_does_not_log(tmp_path):
    _, _, reporter = _study_with_one_finished_trial(tmp_path, {"_target_": "optuna.pruners.NopPruner"})
    with pytest.raises(KeyError, match="val/accuracy.*train/loss.*hydra.sweeper.pruning.metric"):
        reporter.report("temporal", 1, {"train/loss": 1.0})


def test_a_run_outside_a_sweep_has_no_reporter():
    assert trial_reporter(OmegaConf.create({"name": "x"}).get("trial")) is None


def load_study(path):
    return optuna.load_study(study_name="tiny_sweep", storage=JournalStorage(JournalFileBackend(str(path))))


def sweep(*args: str, cwd) -> subprocess.Popen:
    """Start ``python -m twostream -m TINY_SWEEP ARGS`` in ``cwd``."""
    # One thread per process: two sweeps at once on two cores would otherwise oversubscribe them
    # (OpenMP's spinning threads then make each step many times slower).
    return subprocess.Popen([sys.executable, "-m", "twostream", "-m", *TINY_SWEEP, *args], cwd=cwd,
                            env=user_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*workers: subprocess.Popen) -> None:
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr[-3000:]


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory):
    """Three trials with W&B disabled: the working folder, the trials, and any W&B file written."""
    cwd = tmp_path_factory.mktemp("sweep")
    finish(sweep("hydra.sweeper.n_trials=3", "tracking.mode=disabled", cwd=cwd))
    wandb_files = [p for p in cwd.rglob("*") if "wandb" in p.name]
    return cwd, load_study(cwd / "multirun/tiny_sweep/optuna.journal").trials, wandb_files


@pytest.mark.slow  # real sweeps in subprocesses
def test_a_three_trial_sweep_runs_each_trial_in_its_own_folder(first_sweep):
    cwd, trials, _ = first_sweep
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.COMPLETE) for n in range(3)]
    for trial in trials:
        folder = cwd / "multirun/tiny_sweep" / f"trial_{trial.number}"
        assert trial.user_attrs["output_dir"] == str(folder)
        assert set(trial.params) == SEARCHED
        # The objective is the trial's own temporal accuracy on the validation videos ...
        results = json.loads((folder / "results.json").read_text())
        assert trial.value == results["val_accuracy"]["temporal"]
        # ... and the trial ran with the parameters the study proposed, on the temporal stream alone.
        config = OmegaConf.load(folder / ".hydra/config.yaml")
        assert list(config.streams) == ["temporal"]
        for key, value in trial.params.items():
            assert OmegaConf.select(config, key) == value
        assert config.trial.number == trial.number and config.name == "tiny_sweep"
        # the net the trial trained takes the stacks of its own L: 2L input channels
        weights = torch.load(folder / "checkpoints/temporal.pt", weights_only=False)["model"]
        first_conv = next(w for w in weights.values() if w.ndim == 4)
        assert first_conv.shape[1] == 2 * trial.params["streams.temporal.L"], first_conv.shape


@pytest.mark.slow  # real sweeps in subprocesses
def test_disabled_tracking_writes_nothing(first_sweep):
    *_, wandb_files = first_sweep
    assert wandb_files == [], "tracking.mode=disabled wrote W&B files"


@pytest.fixture(scope="module")
def second_round(first_sweep):
    """The same command again, by two workers at once sharing the journal, one trial each. Worker A
    logs to W&B and prunes at the first report; worker B runs its trial to the end."""
    cwd, *_ = first_sweep
    always_prune = ["hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner", "+hydra.sweeper.pruner.lower=1.1",
                    "~hydra.sweeper.pruner.n_startup_trials", "~hydra.sweeper.pruner.n_warmup_steps"]
    finish(sweep("hydra.sweeper.n_trials=1", "tracking.mode=offline", *always_prune, cwd=cwd),
           sweep("hydra.sweeper.n_trials=1", "tracking.mode=disabled", "hydra.sweeper.pruner=null", cwd=cwd))
    trials = load_study(cwd / "multirun/tiny_sweep/optuna.journal").trials
    pruned = next(t for t in trials[3:] if t.user_attrs["pruning"] is not None)
    return cwd, trials, pruned


@pytest.mark.slow  # real sweeps in subprocesses
def test_two_workers_rerunning_the_command_continue_the_study(first_sweep, second_round):
    _, before, _ = first_sweep
    cwd, trials, pruned = second_round
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert [(t.params, t.value, t.state) for t in trials[:3]] == [(t.params, t.value, t.state) for t in before]
    [completed] = [t for t in trials[3:] if t is not pruned]
    assert completed.state == TrialState.COMPLETE and pruned.state == TrialState.PRUNED
    results = json.loads((cwd / f"multirun/tiny_sweep/trial_{completed.number}/results.json").read_text())
    assert completed.value == results["val_accuracy"]["temporal"]


@pytest.mark.slow  # real sweeps in subprocesses
def test_pruning_stops_a_trial_on_the_value_its_training_logged(second_round):
    cwd, _, pruned = second_round
    folder = cwd / f"multirun/tiny_sweep/trial_{pruned.number}"
    assert not (folder / "results.json").exists()  # stopped after training's first epoch
    train = [read_offline_run(p) for p in find_runs(folder / "wandb")][-1]
    assert train.job_type == "train_temporal" and train.exit_code == 1
    assert pruned.intermediate_values == {1: train.history[-1]["val/accuracy"]}


@pytest.mark.slow  # real sweeps in subprocesses
def test_trial_runs_are_grouped_by_study_and_record_code_and_cache(second_round):
    cwd, _, pruned = second_round
    runs = [read_offline_run(p) for p in find_runs(cwd / f"multirun/tiny_sweep/trial_{pruned.number}/wandb")]
    assert [r.job_type for r in runs] == ["extract", "train_temporal"]
    assert {r.group for r in runs} == {"tiny_sweep"}
    extract = runs[0]
    provenance = extract.config["provenance"]
    assert provenance["cache_fingerprint"]["estimator"] == extract.config["flow"]["name"]
    assert provenance["cache_fingerprint"]["bound"] == extract.config["cache"]["bound"]
    if shutil.which("git") and (REPO / ".git").exists():
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert provenance["git"]["commit"] == head.strip()
    samples = [extract.summary[f"flow_samples/{i}"] for i in range(4)]  # single images, as wandb leet shows them
    assert "flow_samples/4" not in extract.summary and all(" flow (max " in s["caption"] for s in samples)


class _Launcher:
    """Hydra's launcher contract without running anything: every job completes with a known objective."""

    def __init__(self) -> None:
        self.launched: list[list[str]] = []

    def launch(self, jobs, initial_job_idx):
        self.launched += jobs
        return [JobReturn(overrides=job, status=JobStatus.COMPLETED,
                          _return_value={"val_accuracy": {"temporal": 0.5}})
                for job in jobs]


def _sweeper(tmp_path, launcher, n_trials, sampler="auto"):
    sweeper = OptunaSweeper(study_name="s", storage=str(tmp_path / "s.journal"), direction="maximize",
                            objective="val_accuracy.temporal", n_trials=n_trials, parallel_trials=3, sampler=sampler,
                            pruner=None, pruning=OmegaConf.create({"stream": "temporal", "metric": "val/accuracy"}),
                            params=OmegaConf.create({"a": "choice(1, 2)", "b": "choice(x, y)"}),
                            heartbeat=OmegaConf.create({"interval": 1, "grace_period": 3}))
    sweeper.hydra_context = SimpleNamespace(config_loader=None)
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}},
                                       "dataset": {"validation": {"fraction": 0.2, "seed": 0}}})
    sweeper.launcher = launcher
    sweeper.validate_batch_is_legal = lambda jobs: None  # Hydra's check composes each job's config
    return sweeper


def test_a_finite_space_tries_each_combination_once_and_then_stops(tmp_path):
    launcher = _Launcher()
    study = _sweeper(tmp_path, launcher, n_trials=10).sweep([])
    combos = [(t.params["a"], t.params["b"]) for t in study.trials]
    assert sorted(combos) == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]  # all four, none twice, then stop
    assert len(launcher.launched) == 4
    again = _sweeper(tmp_path, _Launcher(), n_trials=2).sweep([])  # a rerun (or another worker) adds none
    assert len(again.trials) == 4
