"""Planted bugs the tests must catch: ``nox -s mutants`` (or ``python tests/mutants.py [NAME ...]``).

A developer check, not part of the test suite: each mutant is a one-line bug that went unnoticed
once (issue 17) or a kind of bug that matters, written as a source substring (unique in its file),
its replacement and the few tests that must catch it. Everything runs in a temporary copy of the
tracked tree, so the working tree is never touched, however the run ends: the selected tests must
pass on the unmutated copy, then fail on every mutant. Exits non-zero naming each survivor.
mutmut 3.8 was tried on six core modules instead: 1,122 generated mutants at ~27 a minute with the
unit tests alone (40+ minutes), segfaults of its forked test runs under torch, and many survivors
that no test should catch (error-message wording, pickled metadata keys): too slow and too noisy here.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TIMEOUT_S = 300  # per pytest run; the selected tests take seconds


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


EVALUATE = "twostream/train/evaluate.py"
DATASETS = "twostream/inputs/datasets.py"
LOOP = "twostream/train/loop.py"
SYNTHETIC = "twostream/data/synthetic.py"
STAGE = "twostream/train/stage.py"


def call_site(test: str) -> tuple[str]:
    """A test of tests/test_call_sites.py (all its parameter sets)."""
    return (f"tests/test_call_sites.py::{test}",)


MUTANTS = [
    # the test protocol's call site (tests/test_evaluate.py)
    Mutant("test-time flow mirrors keep their x sign", EVALUATE,
           "crop_size, crops, source.is_flow)", "crop_size, crops, False)", ("tests/test_evaluate.py",)),
    Mutant("test positions never reach the video's end", EVALUATE,
           "np.linspace(0, available - 1, count)", "np.linspace(0, available, count, endpoint=False)",
           ("tests/test_evaluate.py",)),
    Mutant("test scores average the first position's crops only", EVALUATE,
           "rows.append(probs.mean(0)", "rows.append(probs[:len(probs) // len(positions)].mean(0)",
           ("tests/test_evaluate.py",)),
    Mutant("the model is scored in training mode (dropout on)", EVALUATE,
           "model.eval().to(device)", "model.to(device)", ("tests/test_evaluate.py",)),
    # the input sources (tests/test_sources.py)
    Mutant("bi-directional stacks read the second half-window of backward fields", DATASETS,
           'read_flow(video_id, position, self.L // 2, "bwd")',
           'read_flow(video_id, position + self.L // 2, self.L // 2, "bwd")', ("tests/test_sources.py",)),
    Mutant("flow stacks never use the video's last window", DATASETS,
           "num_flows(video_id) - self.L + 1", "num_flows(video_id) - self.L", ("tests/test_sources.py",)),
    # the learning-rate schedule and the logged training metrics (tests/test_train_metrics.py)
    Mutant("the learning rate never decays", LOOP,
           "gamma=train_cfg.lr_gamma)", "gamma=1.0)", ("tests/test_train_metrics.py",)),
    Mutant("the learning rate decays one epoch late", LOOP,
           "max(1, round(f * epochs))", "max(1, round(f * epochs)) + 1", ("tests/test_train_metrics.py",)),
    Mutant("training accuracy counts the last batch only", LOOP,
           "correct += batch_correct", "correct = batch_correct", ("tests/test_train_metrics.py",)),
    Mutant("train/accuracy logs the validation accuracy", LOOP,
           '"train/accuracy": self.accuracy', '"train/accuracy": self.val_accuracy',
           ("tests/test_train_metrics.py",)),
    Mutant("multi-task accuracy counts only the last task's samples", LOOP,
           "correct += int((logits.argmax(1) == y[index]).sum())",
           "correct = int((logits.argmax(1) == y[index]).sum())",
           ("tests/test_models.py::test_multitask_loss_uses_each_head_only_on_its_own_samples",)),
    # fusion
    Mutant("the SVM's C is the grid's first value, not the cross-validated best", "twostream/fusion/__init__.py",
           "return int(np.argmax(accuracies)), tried", "return 0, tried",
           ("tests/test_fusion.py::test_svm_C_is_the_grid_value_with_the_best_cross_validated_accuracy",)),
    Mutant("the ascending C search walks the grid from its largest C down", "twostream/fusion/__init__.py",
           "sorted(float(c) for c in C_grid)", "sorted((float(c) for c in C_grid), reverse=True)",
           ("tests/test_fusion.py::test_where_accuracy_is_unimodal_in_C_the_ascending_search_chooses_the_full_grids_model",)),
    Mutant("the ascending C search goes on past a tie", "twostream/fusion/__init__.py",
           "accuracy > max(accuracies)", "accuracy >= max(accuracies)",
           ("tests/test_fusion.py::test_the_ascending_search_stops_at_the_first_C_that_does_not_improve",)),
    Mutant("the selection line hides that the C search stopped early", "twostream/fusion/stage.py",
           "if len(svm.C_tried) == grid else", "if True else",
           ("tests/test_fusion.py::test_the_fuse_stage_records_the_Cs_its_ascending_search_fitted",)),
    Mutant("the fuse stage ignores fusion.svm.C_search", "twostream/fusion/stage.py",
           "C_search=svm_cfg.C_search", 'C_search="ascending"',
           ("tests/test_fusion.py::test_the_fuse_stage_chooses_on_validation_and_reads_test_labels_only_to_report",)),
    Mutant("average fusion takes the first stream's scores", "twostream/fusion/__init__.py",
           "np.mean(np.stack(stream_scores), axis=0)", "np.asarray(stream_scores[0])", ("tests/test_fusion.py",)),
    # the validation split and what is chosen on it (issue 12)
    Mutant("a group held out for one class is held out of every class", "twostream/data/validation.py",
           "return video.label, video.group or video.id", "return 0, video.group or video.id",
           ("tests/test_validation.py::test_the_split_depends_on_its_own_seed_only",)),
    Mutant("a folder's test split is a shuffle of all its files: one file more moves others (issue 26)",
           "twostream/data/folder.py", 'per_group="test")', "per_group=None)",
           ("tests/test_datasets.py::test_a_file_more_or_less_moves_no_other_video_between_sets",)),
    Mutant("per-epoch validation and pruning look at the test videos", "twostream/train/stage.py",
           "val_videos = lists.val if", "val_videos = lists.test if",
           ("tests/test_validation.py::test_wrong_test_labels_change_no_choice_only_the_test_accuracies",)),
    Mutant("the SVM's C ignores the validation videos", "twostream/fusion/stage.py",
           'if fit_on == "train" and "val" in loaded else None', "if False else None",
           ("tests/test_fusion.py::test_the_fuse_stage_chooses_on_validation_and_reads_test_labels_only_to_report",)),
    Mutant("train.keep=best_val tests the last epoch's weights", "twostream/train/loop.py",
           'return best["model"], best["epoch"]', 'return state["model"], best["epoch"]',
           ("tests/test_train.py::test_keep_best_val_keeps_the_weights_of_the_epoch_best_on_validation",)),
    # predict: the run's own code path, or scores that differ from its score files (tests/test_predict.py)
    Mutant("predict extracts with the default lossless codec, not the run's cache codec", "twostream/predict.py",
           "layout=cache_layout(cfg))", "layout=type(cache_layout(cfg))())",
           ("tests/test_predict.py::test_predict_gives_every_test_video_the_run_s_own_scores",)),
    Mutant("predict hands the SVM the streams in the wrong order", "twostream/predict.py",
           "for s in run.svm_streams]", "for s in reversed(run.svm_streams)]",
           ("tests/test_predict.py::test_predict_gives_every_test_video_the_run_s_own_scores",)),
    # same command, same numbers (issue 14)
    Mutant("a stream's network is built before torch is seeded", "twostream/train/stage.py",
           "    torch.manual_seed(cfg.seed)\n", "    pass\n", ("tests/test_determinism.py",)),
    # call sites that hand a tested helper the wrong thing (issue 27; tests/test_call_sites.py)
    Mutant("the bi-directional backward half-window is read one field late", DATASETS,
           'read_flow(video_id, position, self.L // 2, "bwd")',
           'read_flow(video_id, position + 1, self.L // 2, "bwd")',
           call_site("test_bidirectional_stacks_read_the_window_s_first_half_backwards")),
    Mutant("the temporal input source takes mean_subtraction for bidirectional", STAGE,
           "stream_cfg.stacking, stream_cfg.bidirectional,", "stream_cfg.stacking, stream_cfg.mean_subtraction,",
           call_site("test_bidirectional_stacks_read_the_window_s_first_half_backwards")),
    Mutant("the temporal input source ignores the configured stacking mode", STAGE,
           "stream_cfg.L, stream_cfg.stacking,", 'stream_cfg.L, "optical_flow",',
           call_site("test_the_stacking_mode_reaches_the_temporal_source")),
    Mutant("training crops of flow are mirrored without negating x", DATASETS,
           "self.crop_size, self.source.is_flow,", "self.crop_size, False,",
           call_site("test_training_samples_flip_flow_by_negating_x_and_reach_every_window")),
    Mutant("training positions never reach a video's final window", DATASETS,
           "torch.randint(0, self.source.num_positions(video.id), (1,))",
           "torch.randint(0, self.source.num_positions(video.id) - 1, (1,))",
           call_site("test_training_samples_flip_flow_by_negating_x_and_reach_every_window")),
    Mutant("the training loop ignores train.multiscale", LOOP,
           "train_cfg.multiscale)", "None)",
           call_site("test_the_training_loop_draws_the_configured_crops_samples_and_scales")),
    Mutant("the temporal CNN-M-2048 keeps conv2's LRN", "twostream/models/__init__.py",
           "conv2_lrn=not is_flow", "conv2_lrn=True",
           call_site("test_both_streams_built_from_a_config_get_their_own_architecture_options")),
    Mutant("both streams' networks get the spatial stream's dropout", STAGE,
           "dropout=stream_cfg.dropout", "dropout=cfg.streams.spatial.dropout",
           call_site("test_both_streams_built_from_a_config_get_their_own_architecture_options")),
    Mutant("the test stage scores the centre crop only, whatever test.crops says", STAGE,
           "crops=cfg.test.crops", "crops=1",
           call_site("test_the_test_stage_scores_every_subset_with_the_configured_protocol")),
    Mutant("synthetic backgrounds ignore the generator's seed", SYNTHETIC,
           "np.random.default_rng([seed, 0, g])", "np.random.default_rng([0, 0, g])",
           call_site("test_another_generator_seed_changes_every_random_element_of_every_clip")),
    Mutant("the synthetic camera pan's direction ignores the generator's seed", SYNTHETIC,
           "pan_direction, pan_speed = rng.uniform(0, 2 * math.pi),",
           "pan_direction, pan_speed = np.random.default_rng(0).uniform(0, 2 * math.pi),",
           call_site("test_another_generator_seed_changes_every_random_element_of_every_clip")),
    # kinds the suite caught before: kept as guards
    Mutant("a flipped flow stack negates y instead of x", "twostream/inputs/transforms.py",
           "flipped[0::2] *= -1", "flipped[1::2] *= -1", ("tests/test_transforms.py",)),
    Mutant("trajectories swap x and y", "twostream/inputs/stacking.py",
           "x, y = x + d[0], y + d[1]", "x, y = x + d[1], y + d[0]", ("tests/test_stacking.py",)),
    # the paper studies' building blocks
    Mutant("last-layer training keeps updating the frozen trunk's batch-norm statistics", "twostream/models/__init__.py",
           "                    module.eval()", "                    module.train()", ("tests/test_train.py",)),
    Mutant("merged label sets give the extra dataset's classes the evaluated dataset's labels",
           "twostream/data/catalog.py", "label=v.label + len(classes)", "label=v.label",
           ("tests/test_datasets_multitask.py",)),
    # sweeps that lose nothing when a worker dies (issue 28)
    Mutant("two workers that claim one combination both run it", "twostream/sweep/sweeper.py",
           "            if holder is not None:", "            if False:",
           ("tests/test_sweep_recovery.py::test_two_trials_holding_one_combination_run_it_once",)),
    Mutant("a lost trial is never retried (its stale failure queues nothing)", "twostream/sweep/study.py",
           "        super().__call__(study, trial)", "        pass",
           ("tests/test_sweep_recovery.py::test_a_trial_lost_twice_is_given_up",
            "tests/test_sweep_recovery.py::test_ctrl_c_fails_and_requeues_the_batch_at_once")),
    # versioned artefacts and one fingerprint rule (issue 25)
    Mutant("a runtime setting counts in fingerprints", "twostream/fingerprint.py",
           "for k, v in value.items() if k != RUNTIME}", "for k, v in value.items()}",
           ("tests/test_formats.py::test_a_runtime_change_counts_for_neither_the_cache_nor_the_checkpoint",)),
    Mutant("an artefact from a newer twostream is read", "twostream/fingerprint.py",
           "if version > self.current:", "if False:",
           ("tests/test_formats.py::test_a_checkpoint_without_settings_or_from_a_newer_twostream_is_refused_with_the_fix",
            "tests/test_formats.py::test_a_score_file_from_a_newer_twostream_is_refused",
            "tests/test_formats.py::test_an_svm_from_a_newer_twostream_is_refused_with_the_fix")),
    Mutant("an unversioned checkpoint is read without its upgrade step", LOOP,
           '{"trainable": "all", **settings["stream"]}', 'settings["stream"]',
           ("tests/test_formats.py::test_a_checkpoint_from_before_versions_is_upgraded_to_the_defaults_it_was_made_with",)),
    Mutant("a score file without its arrays is taken", "twostream/scores.py",
           "if missing := [name for name in _ARRAYS if name not in state]:", "if missing := []:",
           ("tests/test_formats.py::test_a_score_file_from_before_versions_is_read_and_one_without_its_arrays_refused",)),
    Mutant("an unversioned svm.pkl is read without its upgrade step", "twostream/fusion/__init__.py",
           '    return {"selection_accuracy": None, "C_tried": [], "C_accuracies": [], **state}', "    return state",
           ("tests/test_formats.py::test_an_svm_from_before_versions_is_read_with_no_choice_of_C_recorded",)),
    Mutant("a format-2 cache is read without its upgrade step", "twostream/cache/store.py",
           'if attrs.get("status") != COMPLETE or "frame_indices" in attrs:', "if True:",
           ("tests/test_formats.py::test_a_format_2_cache_of_every_vintage_reads_as_format_3",)),
    Mutant("a cache of a newer format is read", "twostream/cache/store.py",
           "OLDEST_FORMAT <= version <= FORMAT_VERSION:", "OLDEST_FORMAT <= version:",
           ("tests/test_formats.py::test_a_new_cache_is_format_3_and_older_or_newer_formats_are_refused_with_the_fix",)),
]


def copy_tree(destination: Path) -> None:
    """Copy the files git tracks or would track (not the ignored .venv, caches or outputs)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def pytest(tree: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    """Run the tests in ``tree`` with its own twostream first on the path; (exit code, output)."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
                        "WANDB_MODE": "offline", "COLUMNS": "300"}  # wide: the summary keeps the message
    # -m: a mutant's tests run even when they are marked slow (pyproject's addopts leaves those out)
    result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                             "-m", "slow or not slow", *tests],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    return result.returncode, result.stdout + result.stderr


def first_failure(output: str) -> str:
    """The short summary's first FAILED/ERROR line: which test caught the mutant, and its message."""
    lines = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return lines[0][:300] if lines else output.strip().splitlines()[-1][:300]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only mutants whose name contains one of these")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.names or any(n in m.name for n in args.names)]
    if not mutants:
        sys.exit(f"no mutant matches {args.names}; names: " + "; ".join(m.name for m in MUTANTS))
    survivors = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twostream-mutants-") as tmp:
        tree = Path(tmp) / "repo"
        copy_tree(tree)
        if SHARED.is_dir():  # the tests find the real data at ../shared, beside the copy as beside the checkout
            (tree.parent / "shared").symlink_to(SHARED)
        imported = subprocess.run([sys.executable, "-c", "import twostream; print(twostream.__file__)"], cwd=tree,
                                  env=os.environ | {"PYTHONPATH": str(tree)}, capture_output=True, text=True)
        if not imported.stdout.strip().startswith(str(tree)):  # else the mutants would not be the code tested
            sys.exit(f"the copy's twostream is not the one imported: {imported.stdout.strip() or imported.stderr}")
        selected = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        rc, output = pytest(tree, selected)
        if rc != 0:
            print(output[-3000:])
            sys.exit("the selected tests fail on the unmutated tree: fix them before judging mutants")
        print(f"unmutated: {len(selected)} test selections pass ({time.perf_counter() - start:.0f} s)")
        for mutant in mutants:
            path = tree / mutant.path
            if not path.is_file():
                sys.exit(f"mutant {mutant.name!r}: no file {mutant.path} (moved?); update it in tests/mutants.py")
            original = path.read_text()
            if original.count(mutant.old) != 1:
                sys.exit(f"mutant {mutant.name!r}: {mutant.old!r} occurs {original.count(mutant.old)} times in "
                         f"{mutant.path}, not once; update it in tests/mutants.py")
            mutated = original.replace(mutant.old, mutant.new)
            compile(mutated, mutant.path, "exec")  # a mutant must be a bug, not a syntax error
            began = time.perf_counter()
            path.write_text(mutated)
            try:
                rc, output = pytest(tree, mutant.tests)
            finally:
                path.write_text(original)
            seconds = time.perf_counter() - began
            if rc == 1:
                print(f"killed   {seconds:5.1f} s  {mutant.name}\n                   {first_failure(output)}")
            else:  # 0: every test passed; anything else (no tests, usage error) is no verdict either
                survivors.append(mutant.name)
                print(f"SURVIVED {seconds:5.1f} s  {mutant.name} (pytest exit code {rc})")
    print(f"{len(mutants) - len(survivors)} of {len(mutants)} mutants killed in {time.perf_counter() - start:.0f} s")
    if survivors:
        print("survivors (write a test that catches each):\n  " + "\n  ".join(survivors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
