"""The validation split: whole groups held out of the training videos, the same for every stream,
model seed and process, and what every choice is made on."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from twostream.data.catalog import load_split_lists
from twostream.data.splits import SplitLists, parse_hmdb51, parse_ucf101
from twostream.data.validation import hold_out_validation

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


def official(name: str) -> SplitLists:
    folder = SHARED_DATA / f"{name}_splits"
    if not folder.is_dir():
        pytest.skip(f"real split lists {folder} are not present (they ship beside the repo, not in it)")
    parse = parse_ucf101 if name == "ucf101" else parse_hmdb51
    return parse(folder, 1, Path("/videos"))  # the videos themselves are not read


def groups(videos, label):
    return {v.group for v in videos if v.label == label}


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_whole_groups_of_every_class_are_held_out_of_training(name):
    lists = official(name)
    held = hold_out_validation(lists, fraction=0.2, seed=0)
    assert held.test == lists.test and held.classes == lists.classes
    assert sorted(v.id for v in held.train + held.val) == sorted(v.id for v in lists.train)
    for label, class_name in enumerate(lists.classes):
        all_groups = groups(lists.train, label)
        assert groups(held.val, label), f"{class_name} has no validation videos"
        assert groups(held.val, label).isdisjoint(groups(held.train, label)), f"{class_name}: a group on both sides"
        assert len(groups(held.val, label)) == max(1, round(0.2 * len(all_groups))), class_name
    # about a fifth of the training videos (groups differ in size)
    assert 0.15 < len(held.val) / len(lists.train) < 0.25


def test_the_split_depends_on_its_own_seed_only(tmp_path):
    def val_ids(*overrides: str) -> list[str]:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
            cfg = compose(config_name="config", overrides=[
                f"paths.data_dir={tmp_path}", "paths.output_dir=.", "dataset.generator.groups_per_class=4",
                "dataset.generator.clips_per_group=2", "dataset.generator.num_frames=4", *overrides])
        return [v.id for v in load_split_lists(cfg.dataset).val]

    default = val_ids()
    # one of the three training groups per class, two clips each, drawn for each class on its own
    # (every class has groups g01-g04: the same group name is not the same group)
    held = {v.rsplit("/", 1)[0]: v.rsplit("_", 2)[1] for v in default}
    assert len(default) == 12 * 2 and len(held) == 12 and len(set(held.values())) > 1, held
    assert val_ids("seed=7") == default  # the model's seed does not move it
    assert val_ids("streams.spatial.dropout=0.1", "flow=dis") == default
    assert val_ids("dataset.validation.seed=1") != default
    assert val_ids("dataset.validation=null") == []


def test_every_process_draws_the_same_split():
    lists = official("ucf101")
    here = [v.id for v in hold_out_validation(lists, 0.2, seed=3).val]
    script = ("import json, sys; from pathlib import Path; from twostream.data.splits import parse_ucf101; "
              "from twostream.data.validation import hold_out_validation; "
              "lists = parse_ucf101(Path(sys.argv[1]), 1, Path('/videos')); "
              "print(json.dumps([v.id for v in hold_out_validation(lists, 0.2, seed=3).val]))")
    for hash_seed in ("1", "2"):  # another interpreter, with other string hashes
        out = subprocess.run([sys.executable, "-c", script, str(SHARED_DATA / "ucf101_splits")], check=True,
                             capture_output=True, text=True, env={"PYTHONHASHSEED": hash_seed, "PATH": "",
                                                                  "PYTHONPATH": str(REPO)})
        assert json.loads(out.stdout) == here


def test_a_class_with_one_group_stays_in_training():
    lists = official("ucf101")
    one = [v for v in lists.train if v.label != 0] + [v for v in lists.train if v.label == 0][:1]
    held = hold_out_validation(SplitLists(lists.classes, one, lists.test), 0.2, seed=0)
    assert Counter(v.label for v in held.train)[0] == 1 and 0 not in {v.label for v in held.val}


# --- nothing is chosen on test labels: a sweep run twice, the second time with every test label wrong

SWEEP = [
    "+experiment=quickstart", "hydra/sweeper=optuna", "name=labels", "progress=false", "tracking.mode=disabled",
    "dataset.generator.groups_per_class=5", "dataset.generator.clips_per_group=2",
    "dataset.generator.test_groups=1", "dataset.generator.num_frames=12",
    "streams.spatial.epochs=3", "streams.temporal.epochs=3", "train.samples_per_video=4",
    "train.runtime.val_positions=2", "test.num_positions=2", "test.crops=1",
    "hydra.sweeper.objective=val_accuracy.fusion_svm", "hydra.sweeper.n_trials=4", "hydra.sweeper.seed=0",
    "hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0",
    "streams.temporal.L=choice(2,4)", "streams.temporal.mean_subtraction=choice(true,false)",
]


def wrong_test_labels(cwd: Path) -> list[str]:
    """Generate the sweep's synthetic data in ``cwd``, then lay out a copy of its lists in which every
    test video sits in the next class's folder (its label wrong); the overrides that read the copy."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[f"paths.data_dir={cwd / 'data'}", "paths.output_dir=.",
                                                       *(o for o in SWEEP if o.startswith("dataset."))])
    lists = load_split_lists(cfg.dataset)
    videos, splits = cwd / "wrong" / "videos", cwd / "wrong" / "splits"
    splits.mkdir(parents=True)
    original_splits = Path(cfg.dataset.splits_dir)
    for name in ("classInd.txt", "trainlist01.txt"):
        (splits / name).write_bytes((original_splits / name).read_bytes())
    test_lines = []
    for video in lists.train + lists.val + lists.test:
        folder = lists.classes[(video.label + 1) % len(lists.classes)] if video in lists.test else video.id.split("/")[0]
        link = videos / folder / video.path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(video.path.resolve())
        if video in lists.test:
            test_lines.append(f"{folder}/{video.path.name}")
    (splits / "testlist01.txt").write_text("\n".join(test_lines) + "\n")
    return [f"dataset.video_root={videos}", f"dataset.splits_dir={splits}"]


def start_sweep(cwd: Path, *extra: str) -> subprocess.Popen:
    env = {"PATH": "", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HOME": str(cwd)}
    return subprocess.Popen([sys.executable, "-m", "twostream", "-m", *SWEEP, *extra], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_wrong_test_labels_change_no_choice_only_the_test_accuracies(tmp_path):
    import optuna  # noqa: PLC0415

    right, wrong = tmp_path / "right", tmp_path / "wrong_labels"
    right.mkdir(), wrong.mkdir()
    sweeps = [start_sweep(right), start_sweep(wrong, *wrong_test_labels(wrong))]  # both at once: 2 cores
    for sweep in sweeps:
        _, stderr = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, stderr[-3000:]

    def outcome(cwd: Path):
        study = optuna.load_study(study_name="labels", storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(cwd / "multirun/labels/optuna.journal"))))
        results = {t.number: json.loads((cwd / f"multirun/labels/trial_{t.number}/results.json").read_text())
                   for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
        choices = [(t.params, t.state, t.value, t.intermediate_values) for t in study.trials]
        return study, choices, results

    study, choices, results = outcome(right)
    wrong_study, wrong_choices, wrong_results = outcome(wrong)
    assert len(choices) == 4 and results, choices
    assert wrong_choices == choices  # the same trials, pruned at the same epochs, with the same objectives
    assert wrong_study.best_trial.number == study.best_trial.number
    for number, result in results.items():
        assert wrong_results[number]["svm_C"] == result["svm_C"]
        assert wrong_results[number]["val_accuracy"] == result["val_accuracy"]
    # ... while the test numbers do see the wrong labels
    assert any(wrong_results[n]["accuracy"] != r["accuracy"] for n, r in results.items())
