"""The fuse stage: fuse the streams' test scores, write fused score files, the model and the results."""

import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from twostream.data.splits import SplitLists
from twostream.errors import StageError
from twostream.fusion import SvmFusion, average_fusion, cv_splits, fit_svm_fusion, per_class_accuracy
from twostream.report import format_markdown, log_results, write_results
from twostream.rundir import RunDir
from twostream.runlog import RunLog
from twostream.scores import (
    Scores,
    accuracy,
    confusion_counts,
    mean_class_accuracy,
    top_k_accuracy,
)

log = logging.getLogger(__name__)

FUSION_METHODS = ("fusion_average", "fusion_svm")
TOP_K = 5  # the second accuracy reported beside top-1 (of min(TOP_K, classes) best classes)


def svm_fit_options(cfg: DictConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`~twostream.fusion.fit_svm_fusion` that the config sets
    (``fusion.svm``'s grid, search, folds, solver limits, and the run's seed)."""
    svm_cfg = cfg.fusion.svm
    return dict(C_grid=list(svm_cfg.C_grid), cv_folds=svm_cfg.cv_folds, max_iter=svm_cfg.max_iter, seed=cfg.seed,
                tol=svm_cfg.tol, C_search=svm_cfg.C_search)


def fit_fusion_svm(cfg: DictConfig, loaded: dict[str, list[Scores]]) -> tuple[SvmFusion, str]:
    """The fusion SVM over the streams' scores (``loaded``: subset -> each stream's Scores), and the
    subset it was fitted on, as ``fusion.svm.fit_on`` says:

    - ``train``: on the training videos' scores, C chosen on the validation videos (by
      cross-validation on the training videos when the run has no validation split);
    - ``val``: on the validation videos' scores, which the nets never trained on, C by
      cross-validation among them;
    - ``auto``: both, keeping the one more accurate on validation videos it was not fitted on
      (held out, or cross-validated).

    Without a validation split, ``val`` and ``auto`` fit on the training videos. Training scores
    serve while the nets generalise; once they fit their training videos (as the paper's nets fit
    UCF-101), those scores are near one-hot and the validation videos' are the ones that look like
    the test videos' (experiments/fusion_fit).
    """
    svm_cfg = cfg.fusion.svm

    def fit(fit_on: str) -> SvmFusion:
        fitted = loaded[fit_on]
        held_out = ([sc.scores for sc in loaded["val"]], loaded["val"][0].labels) \
            if fit_on == "train" and "val" in loaded else None
        return fit_svm_fusion([sc.scores for sc in fitted], fitted[0].labels, held_out=held_out,
                              **svm_fit_options(cfg))

    if "val" not in loaded:
        if svm_cfg.fit_on != "train":
            log.info("fusion.svm.fit_on=%s: the run has no validation split; fitting on the training videos",
                     svm_cfg.fit_on)
        return fit("train"), "train"
    if svm_cfg.fit_on != "auto":
        return fit(svm_cfg.fit_on), svm_cfg.fit_on
    on_train, on_val = fit("train"), fit("val")
    if (on_val.selection_accuracy or 0.0) > (on_train.selection_accuracy or 0.0):  # a tie keeps train
        return on_val, "val"
    return on_train, "train"


def svm_selection(cfg: DictConfig, svm: SvmFusion, fitted_on: str, loaded: dict[str, list[Scores]]
                  ) -> dict[str, Any] | None:
    """How the SVM's C was chosen, with the accuracy that chose it (a selection figure, not a validation
    accuracy: it is the best of the grid, or measured on the videos the SVM was fitted on), with the Cs
    fitted to choose it and their accuracies; None when nothing was chosen (a single C, or too few videos to cross-validate)."""
    if svm.selection_accuracy is None:
        return None
    grid = len(cfg.fusion.svm.C_grid)
    tried = (f"best of {grid} values of C" if len(svm.C_tried) == grid else
             f"best of the {len(svm.C_tried)} smallest of {grid} values of C (stopped: the largest of them was "
             "no more accurate than a smaller one)")
    if fitted_on == "train" and "val" in loaded:
        how = f"{tried} on the {len(loaded['val'][0].labels)} validation videos; the SVM fitted on the training videos"
    else:
        labels = loaded[fitted_on][0].labels
        splits, drawn = cv_splits(labels, cfg.fusion.svm.cv_folds, cfg.seed)
        how = (f"{tried} by {len(splits)}-fold cross-validation ({drawn}) among the {len(labels)} "
               f"{'validation' if fitted_on == 'val' else 'training'} videos it was fitted on")
    return {"accuracy": svm.selection_accuracy, "how": how,
            "C_tried": svm.C_tried, "C_accuracies": svm.C_accuracies}


def run_fuse(cfg: DictConfig, lists: SplitLists, run_dir: RunDir, run_log: RunLog) -> dict[str, Any]:
    """Fuse every stream's scores (average, SVM); write the fused scores, the SVM and the results
    into ``run_dir``.

    Any number of streams (``cfg.streams``) is fused; their score files must list the same videos.
    A single stream has nothing to fuse: its results are written without fusion methods.

    The SVM is fitted as :func:`fit_fusion_svm` says. ``val_accuracy`` holds what choices are made
    on; the test labels are read for ``accuracy`` alone.
    """
    streams = list(cfg.streams)
    subsets = ("train", "val", "test") if lists.val else ("train", "test")
    loaded = {subset: [Scores.load(run_dir.scores(s, subset)) for s in streams] for subset in subsets}
    for subset in loaded.values():
        if any(list(sc.video_ids) != list(subset[0].video_ids) for sc in subset[1:]):
            raise StageError("the streams' score files list different videos; rerun stage=test for all streams")
    test = loaded["test"][0]
    classes = [str(c) for c in test.classes]

    methods = FUSION_METHODS if len(streams) > 1 else ()
    svm, fitted_on = None, None
    if methods:
        svm, fitted_on = fit_fusion_svm(cfg, loaded)
        svm.save(run_dir.svm_model, streams)

    def method_scores(subset: str) -> dict[str, np.ndarray]:
        per_stream = [sc.scores for sc in loaded[subset]]
        fused = {} if svm is None else {"fusion_average": average_fusion(per_stream),
                                        "fusion_svm": svm.decision(per_stream)}
        return dict(zip(streams, per_stream, strict=True)) | fused

    test_scores = method_scores("test")
    fused_files = [run_dir.scores(m, "test") for m in methods]
    for method, path in zip(methods, fused_files, strict=True):
        Scores(test.video_ids, test.labels, test_scores[method].astype(np.float32), test.classes).save(path)

    test_accuracy = {m: accuracy(s, test.labels) for m, s in test_scores.items()}
    top_k = min(TOP_K, len(classes))
    val_accuracy = {}
    if "val" in loaded:
        val_labels = loaded["val"][0].labels
        val_accuracy = {m: accuracy(s, val_labels) for m, s in method_scores("val").items()}
        if svm is not None:  # never the SVM judged on videos it was fitted on: the accuracy that chose its C
            # (kept under this key, which sweeps name as their objective; results.md and W&B show it
            # apart from the validation accuracies, as svm_selection says what it is)
            val_accuracy["fusion_svm"] = svm.selection_accuracy
    per_class = {m: per_class_accuracy(s, test.labels, len(classes)) for m, s in test_scores.items()}
    test_counts = np.bincount(test.labels, minlength=len(classes))
    majority = int(test_counts.argmax())
    results = {"experiment": cfg.name, "dataset": cfg.dataset.name, "split": cfg.dataset.split,
               "num_classes": len(classes), "num_test_videos": len(test.labels),
               "num_val_videos": len(loaded["val"][0].labels) if "val" in loaded else 0,
               "chance": 1.0 / len(classes),
               # the best a constant answer can do on these test videos: the share of the largest class
               "majority_class": classes[majority], "majority_baseline": float(test_counts[majority] / len(test.labels)),
               "svm_C": None if svm is None else svm.C, "svm_fit_on": fitted_on,
               "svm_selection": None if svm is None else svm_selection(cfg, svm, fitted_on, loaded),
               "train_keep": OmegaConf.select(cfg, "train.keep"),
               "accuracy": test_accuracy, "top_k": top_k,
               "top_k_accuracy": {m: top_k_accuracy(s, test.labels, top_k) for m, s in test_scores.items()},
               "mean_class_accuracy": {m: mean_class_accuracy(s, test.labels) for m, s in test_scores.items()},
               "val_accuracy": val_accuracy, "classes": classes,
               # JSON has no NaN: a class without test videos is null.
               "per_class_accuracy": {m: [None if np.isnan(a) else float(a) for a in acc]
                                      for m, acc in per_class.items()},
               # rows: true class, columns: predicted class (top-1), in ``classes`` order
               "confusion": {m: confusion_counts(s, test.labels, len(classes)).tolist() for m, s in test_scores.items()}}
    json_path, md_path = write_results(results, run_dir)
    print(format_markdown(results))
    log_results(run_log, results)
    run_log.log_artifact([json_path, md_path], name=f"{cfg.name}-results", type="results")
    if methods:
        run_log.log_artifact([run_dir.svm_model, *fused_files], name=f"{cfg.name}-fusion", type="fusion")
    return results
