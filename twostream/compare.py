"""Compare runs side by side, from their local files alone: a Markdown table and PNG plots.

    python -m twostream.compare outputs/run_a outputs/run_b --out comparison/
    python -m twostream.compare --study multirun/sweep_temporal/optuna.journal --out comparison/
    python -m twostream.compare experiments/paper/table2/runs.json --mean --out comparison/

A run is an output folder of ``python -m twostream`` (``results.json``, ``scores/*.npz`` and
``.hydra/config.yaml``); a study is an Optuna storage written by the sweeper (a journal file or
an RDB URL), whose trials name their output folders. A ``runs.json`` (a table's recorded runs, e.g.
experiments/paper/table2/runs.json) stands for the runs it lists: their accuracies and overrides,
without score files, so without the per-class table and plot. Written into ``--out``:

- ``comparison.md``: one row per run (its differing settings, or the trial's parameters, and the
  accuracy of every stream and fusion method), then per-class accuracy of one method;
- ``accuracy.png`` (accuracy per setting), ``per_class.png`` (classes x runs),
  ``fusion_vs_streams.png`` (each fusion method against the best single stream of its run).

The same tables and plots go to one W&B run (``job_type=compare``), with the ``tracking`` config of
``conf/`` (``--tracking-mode`` overrides its mode; the offline run lands in ``<out>/wandb``).
"""

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import optuna
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.stats import t as student_t

from twostream.configs import config_dir
from twostream.fusion import per_class_accuracy
from twostream.fusion.stage import FUSION_METHODS
from twostream.rundir import RunDir
from twostream.runlog import TRACKING_MODES
from twostream.scores import Scores
from twostream.sweep.study import OBJECTIVE_ATTR, OUTPUT_DIR_ATTR, open_storage
from twostream.tracking import start_run

matplotlib.use("Agg")  # files only, no display
# labels are setting values (e.g. unresolved "${...}" interpolations), never TeX: "$" stays a dollar sign
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen before pyplot is imported)

# Keys that differ between runs without making them different experiments.
IGNORED_SETTINGS = ("name", "paths", "trial", "tracking", "progress", "stage", "device")


@dataclass
class RunResult:
    """One run's numbers: accuracy per method, per-class accuracy, and what it was run with."""

    path: Path
    accuracy: dict[str, float]
    chance: float
    classes: list[str]
    per_class: dict[str, np.ndarray]
    settings: dict[str, Any] = field(default_factory=dict)  # flattened config, or a trial's params
    overrides: dict[str, str] | None = None  # the job's command-line overrides, when Hydra recorded them
    trial: int | None = None
    objective: float | None = None
    test_videos: frozenset[str] | None = None  # the ids its test score files hold
    recorded_in: Path | None = None  # the runs.json it was read from (no score files, no per-class table)


@dataclass
class OtherTrial:
    """A trial of the study without results to compare (pruned, failed, running)."""

    number: int
    state: str
    params: dict[str, Any]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: node}


def load_run(path: str | Path) -> RunResult:
    """A run folder's results.json, per-class accuracy from its test score files, and its config."""
    path = Path(path)
    run_dir = RunDir(path)
    results_file = run_dir.results_json
    if not results_file.is_file():
        raise FileNotFoundError(f"{results_file}: no results; is {path} a run folder whose fuse stage ran?")
    results = json.loads(results_file.read_text())
    classes = list(results.get("classes", []))
    per_class, test_videos = {}, None
    for method in results["accuracy"]:
        score_file = run_dir.scores(method, "test")
        if score_file.is_file():
            scores = Scores.load(score_file)
            test_videos = test_videos or frozenset(str(v) for v in scores.video_ids)
            classes = classes or [str(c) for c in scores.classes]
            per_class[method] = per_class_accuracy(scores.scores, scores.labels, len(scores.classes))
        elif method in results.get("per_class_accuracy", {}):
            per_class[method] = np.array([math.nan if a is None else a
                                          for a in results["per_class_accuracy"][method]])
    config_file = run_dir.config
    settings = _flatten(OmegaConf.to_container(OmegaConf.load(config_file))) if config_file.is_file() else {}
    overrides_file = run_dir.overrides
    overrides = (dict(o.partition("=")[::2] for o in OmegaConf.load(overrides_file))
                 if overrides_file.is_file() else None)
    return RunResult(path, dict(results["accuracy"]), float(results["chance"]), classes, per_class, settings,
                     overrides, test_videos=test_videos)


def load_study(storage: str, study_name: str | None
               ) -> tuple[str, str | None, list[RunResult], list[OtherTrial]]:
    """The study's name and objective key, its completed trials as runs (settings = the trial's
    parameters), and its other trials."""
    backend = open_storage(storage)
    names = optuna.get_all_study_names(backend)
    if study_name is None:
        if len(names) != 1:
            raise ValueError(f"{storage} holds studies {names}; choose one with --study-name")
        study_name = names[0]
    elif study_name not in names:
        raise ValueError(f"{storage} has no study {study_name!r} (it has {names})")
    runs, others = [], []
    study = optuna.load_study(study_name=study_name, storage=backend)
    for trial in study.trials:
        output_dir = trial.user_attrs.get(OUTPUT_DIR_ATTR)
        if trial.state == optuna.trial.TrialState.COMPLETE and output_dir and Path(output_dir).is_dir():
            run = load_run(output_dir)
            run.settings, run.trial, run.objective = dict(trial.params), trial.number, trial.value
            runs.append(run)
        else:
            others.append(OtherTrial(trial.number, trial.state.name.lower(), dict(trial.params)))
    return study_name, study.user_attrs.get(OBJECTIVE_ATTR), runs, others


def differing_settings(runs: Sequence[RunResult]) -> list[str]:
    """Setting keys whose value is not the same in every run (ignoring names and paths)."""
    keys = sorted({k for r in runs for k in r.settings})
    return [k for k in keys if k.split(".")[0] not in IGNORED_SETTINGS
            and len({json.dumps(r.settings.get(k), sort_keys=True) for r in runs}) > 1]


def _experiment(run: RunResult) -> str:
    """Every setting that makes an experiment (names, paths and how it was run left out), as one text."""
    return json.dumps({k: v for k, v in run.settings.items() if k.split(".")[0] not in IGNORED_SETTINGS},
                      sort_keys=True)


def identical_runs(runs: Sequence[RunResult]) -> list[list[RunResult]]:
    """Groups of two or more runs identical in every setting (seed included): one experiment run
    again, not repeats of it (on one CPU they give the same numbers)."""
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(_experiment(run), []).append(run)
    return [group for group in groups.values() if len(group) > 1]


def test_set_warnings(runs: Sequence[RunResult]) -> list[str]:
    """A line for each dataset and split whose runs were tested on different videos (their accuracies
    are not comparable); runs of different splits or datasets are expected to differ."""
    by_split: dict[tuple, list[RunResult]] = {}
    for run in runs:
        if run.test_videos is not None:
            key = tuple(json.dumps(run.settings.get(k)) for k in ("dataset.name", "dataset.split", "dataset.root"))
            by_split.setdefault(key, []).append(run)
    lines = []
    for group in by_split.values():
        sets = list(dict.fromkeys(r.test_videos for r in group))
        if len(sets) > 1:
            lines.append("Warning: these runs of one dataset and split were tested on different videos, so their "
                         "accuracies are not comparable: " + "; ".join(
                             f"{', '.join(r.path.name for r in group if r.test_videos == videos)} "
                             f"({len(videos)} videos)" for videos in sets) + ".")
    return lines


def _partition(runs: Sequence[RunResult], values: Callable[[RunResult], tuple]) -> set[frozenset[int]]:
    groups: dict[tuple, set[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(values(run), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def by_overrides(runs: Sequence[RunResult], keys: Sequence[str]) -> tuple[list[RunResult], list[str]] | None:
    """The runs described by their differing command-line overrides (``+paper/table3=merged``,
    ``flow=dis``) instead of the config keys those change, when every run recorded its overrides and
    they tell the runs apart exactly as the differing config ``keys`` do; else None.

    A cell that swaps a whole config group changes dozens of keys: its override names it in one word.
    """
    if any(r.overrides is None for r in runs):
        return None
    names = sorted({k for r in runs for k in r.overrides})
    varied = [k for k in names if k.lstrip("+~").split(".")[0] not in IGNORED_SETTINGS + ("hydra",)
              and len({r.overrides.get(k) for r in runs}) > 1]
    same = _partition(runs, lambda r: tuple(r.overrides.get(k) for k in varied)) == \
        _partition(runs, lambda r: tuple(json.dumps(r.settings.get(k), sort_keys=True) for k in keys))
    if not same:
        return None
    return [replace(r, settings={k: r.overrides.get(k) for k in varied}) for r in runs], varied


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key shares (``streams.temporal.L`` -> ``L``)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(other != key and other.endswith("." + suffix) or other == suffix for other in keys):
                break
        names[key] = suffix
    return names


def methods_of(runs: Sequence[RunResult]) -> list[str]:
    """Streams first, then the fusion methods, in the order the runs list them."""
    seen = list(dict.fromkeys(m for r in runs for m in r.accuracy))
    return [m for m in seen if m not in FUSION_METHODS] + [m for m in seen if m in FUSION_METHODS]


def run_label(run: RunResult, keys: Sequence[str], names: dict[str, str]) -> str:
    """``#trial`` for a study's trial, else its differing settings (or its folder name)."""
    if run.trial is not None:
        return f"#{run.trial}"
    label = ", ".join(f"{names[k]}={_setting_text(run.settings.get(k))}" for k in keys)
    return label or run.path.name


def unique_labels(labels: Sequence[str], runs: Sequence[RunResult]) -> list[str]:
    """The labels, each one that repeats followed by the shortest end of its run's path that tells the
    runs apart (two runs with the same settings, or folders of one name in different places)."""
    out = list(labels)
    for label in set(labels):
        same = [i for i, other in enumerate(labels) if other == label]
        if len(same) < 2:
            continue
        parts = [runs[i].path.resolve().parts for i in same]
        for n in range(1, max(len(p) for p in parts) + 1):
            tails = ["/".join(p[-n:]) for p in parts]
            if len(set(tails)) == len(tails):
                break
        if len(set(tails)) < len(tails):  # one folder given twice
            tails = [f"{tail} #{k}" for k, tail in enumerate(tails, start=1)]
        for i, tail in zip(same, tails, strict=True):
            out[i] = tail if label == runs[i].path.name else f"{label} ({tail})"
    return out


def _setting_text(value: Any) -> str:
    """A setting as text (JSON spelling: true, null, 0.5), so that only accuracies are numbers."""
    return value if isinstance(value, str) else json.dumps(value)


def _percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1%}"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table; floats (accuracies) are shown as percentages, None as a dash."""
    def cell(v: Any) -> str:
        return _percent(v) if isinstance(v, float) or v is None else str(v)  # (an Interval spells itself)

    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)]


# Settings whose runs repeat one experiment: ``--mean`` summarises over them.
REPLICATE_SETTINGS = ("seed", "dataset.split")


@dataclass
class Interval:
    """Mean, sample standard deviation and the half-width of the 95 % confidence interval of the
    mean (Student's t; NaN for a single run) of one method's accuracy over repeated runs."""

    mean: float
    sd: float
    half_width: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Interval":
        n = len(values)
        if n < 2:
            return cls(float(np.mean(values)), math.nan, math.nan, n)
        sd = float(np.std(values, ddof=1))
        return cls(float(np.mean(values)), sd, float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n), n)

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.1%} (1 run)"
        return f"{self.mean:.1%} ± {100 * self.half_width:.1f} (sd {100 * self.sd:.1f})"


def summary_groups(runs: Sequence["RunResult"], keys: Sequence[str]) -> dict[tuple, list["RunResult"]]:
    """Runs grouped by their settings other than :data:`REPLICATE_SETTINGS`, in first-seen order."""
    groups: dict[tuple, list[RunResult]] = {}
    for run in runs:
        setting = tuple(json.dumps(run.settings.get(k), sort_keys=True) for k in keys if k not in REPLICATE_SETTINGS)
        groups.setdefault(setting, []).append(run)
    return groups


@dataclass
class Comparison:
    """The comparison's tables, as columns and rows (the Markdown and the W&B tables show the same)."""

    title: str
    labels: list[str]  # one short label per run (a trial number, or its differing settings)
    columns: list[str]
    rows: list[list[Any]]
    per_class_method: str | None  # None: no per-class table (runs read from a runs.json)
    per_class_columns: list[str]
    per_class_rows: list[list[Any]]
    notes: list[str]
    # with --mean: one row per group of repeated runs (setting, runs, an Interval per method)
    summary_columns: list[str] = field(default_factory=list)
    summary_rows: list[list[Any]] = field(default_factory=list)


def _described(runs: Sequence[RunResult]) -> tuple[list[RunResult], list[str]]:
    """The runs and the keys that tell them apart: a study's searched parameters, else the differing
    settings, or the differing overrides where they tell the runs apart the same way."""
    if runs[0].trial is not None:
        return list(runs), sorted({k for r in runs for k in r.settings})
    keys = differing_settings(runs)
    return by_overrides(runs, keys) or (list(runs), keys)


def _mean_rows(runs: Sequence[RunResult], keys: Sequence[str], experiment_of: dict[Path, str]
               ) -> tuple[list[str], list[list[Any]]]:
    """The ``--mean`` summary's columns and rows: one row per group of repeated runs (its setting, n,
    an :class:`Interval` per method); ``experiment_of`` is each run's full setting (:func:`_experiment`)."""
    names, methods = short_names(keys), methods_of(runs)
    varied = [k for k in keys if k not in REPLICATE_SETTINGS]
    rows = []
    for group in summary_groups(runs, keys).values():
        # a run made again with the same settings is one run, not a repeat (its numbers are the same)
        group = list({experiment_of[r.path]: r for r in reversed(group)}.values())[::-1]
        setting = ", ".join(f"{names[k]}={_setting_text(group[0].settings.get(k))}" for k in varied)
        rows.append([setting or "all", len(group),
                     *(Interval.of([r.accuracy[m] for r in group]) if all(m in r.accuracy for r in group)
                       else None for m in methods)])
    return [", ".join(names[k] for k in varied) or "runs", "n", *methods], rows


def mean_table(runs: Sequence[RunResult]) -> list[str]:
    """The Markdown table of comparison.md's mean section (``--mean``), computed the same way, for run
    folders (:func:`load_run`) or recorded runs (:func:`load_runs_file`)."""
    experiment_of = {r.path: _experiment(r) for r in runs}
    return markdown_table(*_mean_rows(*_described(runs), experiment_of))


# A table's per-run results when its run folders were not kept (experiments/paper/<table>/runs.json):
# its title, chance level, test-set size, and per run its label, overrides, seed and accuracy per method.
RUNS_FILE = "runs.json"


def load_runs_file(path: str | Path) -> list[RunResult]:
    """The runs a ``runs.json`` records, as run results with no per-class scores: each run's settings
    are its overrides, and its path is ``<file>:<label>`` (labels are unique within a file)."""
    path = Path(path)
    try:
        recorded = json.loads(path.read_text())
        if any("/" in run["label"] for run in recorded["runs"]):
            raise ValueError("a run label holds '/'")
        runs = []
        for run in recorded["runs"]:
            overrides = dict(o.partition("=")[::2] for o in run["overrides"])
            runs.append(RunResult(path.parent / f"{path.name}:{run['label']}", dict(run["accuracy"]),
                                  float(recorded["chance"]), [], {}, settings=overrides, overrides=dict(overrides),
                                  recorded_in=path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a readable {RUNS_FILE} ({error!r}); "
                         "it holds {{title, chance, test_videos, runs: [{{label, overrides, seed, accuracy}}]}}") from error
    labels = [r.path.name for r in runs]
    if len(set(labels)) < len(labels):
        raise ValueError(f"{path}: run labels repeat ({sorted({x for x in labels if labels.count(x) > 1})})")
    return runs


def build_comparison(runs: Sequence[RunResult], title: str, others: Sequence[OtherTrial] = (),
                     per_class_method: str | None = None, objective: str | None = None,
                     mean: bool = False) -> Comparison:
    """Tables of accuracy per run and method, and of per-class accuracy for one method.

    ``mean`` adds a summary: runs that differ only in :data:`REPLICATE_SETTINGS` (seeds, splits)
    are repeats of one experiment, and each such group gets its mean, standard deviation and 95 %
    interval per method (the paper reports the mean over the three splits).

    For a study's trials the settings are the searched parameters and ``objective`` (the sweeper's
    dotted key, e.g. ``accuracy.temporal``) names the objective column and the default per-class
    method; for run folders the settings are the config keys whose values differ, or the job
    overrides that differ where they tell the runs apart the same way (:func:`by_overrides`).
    """
    if not runs:
        raise ValueError("no run with results to compare")
    is_study = runs[0].trial is not None
    experiment_of = {r.path: _experiment(r) for r in runs}  # before the settings are cut down to labels
    twins, test_warnings = identical_runs(runs), test_set_warnings(runs)
    runs, keys = _described(runs)
    names = short_names(keys)
    methods = methods_of(runs)
    head = (["trial", objective or "objective"] if is_study else ["run"]) + [names[k] for k in keys]
    rows = []
    for run in runs:
        first = [run.trial, run.objective] if is_study else [run.path.name]
        rows.append(first + [_setting_text(run.settings.get(k)) for k in keys]
                    + [run.accuracy.get(m) for m in methods])
    summary_columns, summary_rows = _mean_rows(runs, keys, experiment_of) if mean else ([], [])
    notes = [f"{len(runs)} runs; chance = {_percent(runs[0].chance)}.", *test_warnings]
    notes += [f"Runs {', '.join(r.path.name for r in group)} are identical in every setting (seed included): "
              f"one run made {len(group)} times, not repeats" + (" (counted once in the mean)." if mean else ".")
              for group in twins]
    if others:
        notes.append("Trials without results: " + "; ".join(
            f"#{t.number} {t.state} (" + ", ".join(f"{names.get(k, k)}={_setting_text(v)}" for k, v in t.params.items()) + ")"
            for t in others) + ".")
    labels = unique_labels([run_label(r, keys, names) for r in runs], runs)
    if per_class_method is None and all(r.recorded_in is not None for r in runs):
        notes.append(f"No per-class table: these runs are read from {RUNS_FILE} files, which hold no scores.")
        return Comparison(title, labels, head + methods, rows, None, [], [], notes, summary_columns, summary_rows)
    objective_method = (objective or "").rpartition(".")[2]  # val_accuracy.temporal -> temporal
    method = per_class_method or (objective_method if objective_method in methods else None) or next(
        (m for m in reversed(methods) if all(m in r.per_class for r in runs)), None)
    if method is None or not all(method in r.per_class for r in runs):
        raise ValueError(f"per-class accuracy of {method!r} is not available for every run "
                         "(it needs the runs' scores/<method>_test.npz)")
    per_class_rows = [[c, *(float(r.per_class[method][i]) for r in runs)] for i, c in enumerate(runs[0].classes)]
    return Comparison(title, labels, head + methods, rows, method, ["class", *labels], per_class_rows, notes,
                      summary_columns, summary_rows)


def write_markdown(comparison: Comparison, path: Path, plots: Sequence[Path]) -> None:
    """comparison.md: the accuracy table, the per-class table and links to the plots."""
    summary = [] if not comparison.summary_rows else [
        f"## Mean over {' and '.join(s.split('.')[-1] + 's' for s in REPLICATE_SETTINGS)}", "",
        "Each cell: mean test accuracy ± the half-width of its 95 % confidence interval (Student's t), "
        "and the standard deviation, in percentage points.", "",
        *markdown_table(comparison.summary_columns, comparison.summary_rows), ""]
    per_class = [] if not comparison.per_class_rows else [
        f"## Per-class accuracy: {comparison.per_class_method}", "",
        *markdown_table(comparison.per_class_columns, comparison.per_class_rows), ""]
    lines = [f"# {comparison.title}", "", *markdown_table(comparison.columns, comparison.rows), "",
             *comparison.notes, "", *summary, *per_class, *(f"![{p.stem}]({p.name})" for p in plots)]
    path.write_text("\n".join(lines) + "\n")


def _figure_array(fig: plt.Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _set_x_labels(ax: plt.Axes, labels: Sequence[str]) -> None:
    """Setting labels under the bars, slanted when one line of them is too long to stand upright."""
    slanted = max((len(line) for label in labels for line in label.splitlines()), default=0) > 12
    if slanted:  # one slanted line each: stacked slanted lines run into the neighbours' labels
        labels = [" ".join(label.splitlines()) for label in labels]
    ax.set_xticks(range(len(labels)), labels, fontsize=8,
                  **({"rotation": 30, "ha": "right", "rotation_mode": "anchor"} if slanted else {}))


def plot_comparison(runs: Sequence[RunResult], comparison: Comparison, out: Path) -> dict[Path, np.ndarray]:
    """accuracy.png, per_class.png and fusion_vs_streams.png; returns each file with its pixels."""
    labels = [label.replace(", ", "\n") for label in comparison.labels]
    methods = methods_of(runs)
    images = {}

    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(runs) * max(1, len(methods)) / 2), 4.5))
    width = 0.8 / len(methods)
    x = np.arange(len(runs))
    for i, method in enumerate(methods):
        values = [r.accuracy.get(method, np.nan) for r in runs]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, label=method)
    ax.axhline(runs[0].chance, color="grey", linestyle="--", linewidth=1, label="chance")
    _set_x_labels(ax, labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{comparison.title}: accuracy per setting")
    ax.legend(fontsize=8, ncols=min(4, len(methods) + 1), loc="upper left")
    fig.tight_layout()
    images[out / "accuracy.png"] = _figure_array(fig)
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)

    if comparison.summary_rows:
        images[out / "accuracy_mean.png"] = _plot_summary(comparison, methods, runs[0].chance,
                                                          out / "accuracy_mean.png")

    if comparison.per_class_rows:
        table = np.array([row[1:] for row in comparison.per_class_rows], dtype=float)
        classes = [row[0] for row in comparison.per_class_rows]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(runs) + 3), max(3.0, 0.3 * len(classes) + 1.5)))
        shown = ax.imshow(table, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        _set_x_labels(ax, labels)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_title(f"per-class accuracy: {comparison.per_class_method}")
        fig.colorbar(shown, ax=ax, label="accuracy")
        fig.tight_layout()
        images[out / "per_class.png"] = _figure_array(fig)
        fig.savefig(out / "per_class.png", dpi=100)
        plt.close(fig)

    streams = [m for m in methods if m not in FUSION_METHODS]
    best_stream = [max((r.accuracy[s] for s in streams if s in r.accuracy), default=np.nan) for r in runs]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, label="fusion = best stream")
    for method in (m for m in methods if m in FUSION_METHODS):
        ax.scatter(best_stream, [r.accuracy.get(method, np.nan) for r in runs], label=method)
    for label, bx, run in zip(comparison.labels, best_stream, runs, strict=True):
        ax.annotate(label, (bx, max(run.accuracy.get(m, 0) for m in methods)), fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("best single stream accuracy")
    ax.set_ylabel("fusion accuracy")
    ax.set_title("fusion vs streams")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    images[out / "fusion_vs_streams.png"] = _figure_array(fig)
    fig.savefig(out / "fusion_vs_streams.png", dpi=100)
    plt.close(fig)
    return images


def _plot_summary(comparison: Comparison, methods: Sequence[str], chance: float, path: Path) -> np.ndarray:
    """accuracy_mean.png: each group's mean accuracy per method, with its 95 % interval as error bars."""
    rows = comparison.summary_rows
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) * max(1, len(methods)) / 2), 4.5))
    width = 0.8 / len(methods)
    x = np.arange(len(rows))
    for i, method in enumerate(methods):
        cells = [row[2 + i] for row in rows]
        means = [np.nan if c is None else c.mean for c in cells]
        errors = [0.0 if c is None or math.isnan(c.half_width) else c.half_width for c in cells]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=errors, capsize=3, label=method)
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    _set_x_labels(ax, [f"{row[0]}\n(n={row[1]})".replace(", ", "\n") for row in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy (mean, 95 % interval)")
    ax.set_title(f"{comparison.title}: mean over repeated runs")
    ax.legend(fontsize=8, ncols=min(4, len(methods) + 1), loc="upper left")
    fig.tight_layout()
    pixels = _figure_array(fig)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return pixels


def tracking_config(out: Path, mode: str | None) -> dict[str, Any]:
    """conf/'s ``tracking`` node, writing under ``out`` (and in ``mode``, when given)."""
    overrides = [f"paths.output_dir={out}"] + ([f"tracking.mode={mode}"] if mode else [])
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg.tracking, resolve=True)


def compare(runs: Sequence[RunResult], out: Path, *, title: str, others: Sequence[OtherTrial] = (),
            per_class_method: str | None = None, objective: str | None = None,
            tracking_mode: str | None = None, mean: bool = False) -> Path:
    """Write comparison.md and the plots into ``out``, log the same to W&B; return comparison.md."""
    if runs and runs[0].trial is not None:  # a study: best trial first
        runs = sorted(runs, key=lambda r: -np.inf if r.objective is None else -r.objective)
    comparison = build_comparison(runs, title, others, per_class_method, objective, mean)
    out.mkdir(parents=True, exist_ok=True)
    images = plot_comparison(runs, comparison, out)
    md_path = out / "comparison.md"
    write_markdown(comparison, md_path, list(images))
    with start_run(tracking_config(out, tracking_mode), stage="compare", group=title,
                   config={"runs": [str(r.path) for r in runs], "per_class_method": comparison.per_class_method}
                   ) as tracker:
        tracker.log_table("comparison", comparison.columns, comparison.rows)
        if comparison.per_class_rows:
            tracker.log_table("per_class_accuracy", comparison.per_class_columns, comparison.per_class_rows)
        if comparison.summary_rows:
            tracker.log_table("mean", comparison.summary_columns,
                              [[str(c) if isinstance(c, Interval) else c for c in row] for row in comparison.summary_rows])
        for path, pixels in images.items():  # one key each: W&B shows a list of images at one size
            tracker.log_images(f"plots/{path.stem}", [pixels], [path.name])
        tracker.log_artifact([md_path, *images], name=f"{title}-comparison", type="comparison")
    return md_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line's options (exits with a usage message on a bad one, as argparse does)."""
    parser = argparse.ArgumentParser(prog="python -m twostream.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        help="run output folders (with results.json), or runs.json files (a table's recorded runs)")
    parser.add_argument("--study", help="an Optuna storage: a journal file path or an RDB URL")
    parser.add_argument("--study-name", help="the study in --study (needed when it holds several)")
    parser.add_argument("--out", type=Path, required=True, help="folder for comparison.md and the PNGs")
    parser.add_argument("--title", help="heading and W&B group (default: the study name or 'comparison')")
    parser.add_argument("--per-class", dest="per_class_method", help="method of the per-class table and plot "
                        "(default: the last one every run has, i.e. a fusion)")
    parser.add_argument("--mean", action="store_true",
                        help="add the mean, standard deviation and 95%% interval of each method over runs that "
                             "differ only in seed or split (e.g. seed=0,1,2 or dataset.split=1,2,3)")
    parser.add_argument("--tracking-mode", choices=TRACKING_MODES,
                        help="W&B mode (default: conf/tracking's)")
    args = parser.parse_args(argv)
    if bool(args.runs) == bool(args.study):
        parser.error("give run folders or --study, not both and not neither")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: run folders and/or a study in, comparison.md and plots out."""
    args = parse_args(argv)
    if args.study:
        name, objective, runs, others = load_study(args.study, args.study_name)
    else:
        runs = [run for p in args.runs for run in (load_runs_file(p) if p.is_file() else [load_run(p)])]
        name, others, objective = "comparison", [], None
    md_path = compare(runs, args.out, title=args.title or name, others=others,
                      per_class_method=args.per_class_method, objective=objective,
                      tracking_mode=args.tracking_mode, mean=args.mean)
    print(md_path.read_text())


if __name__ == "__main__":
    main()
