"""The fuse stage: fuse the streams' test scores, write fused score files, the model and the results."""

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from twostream.data.splits import SplitLists
from twostream.errors import StageError
from twostream.fusion import average_fusion, fit_svm_fusion, per_class_accuracy
from twostream.report import format_markdown, write_results
from twostream.runlog import RunLog
from twostream.scores import Scores, scores_path

FUSION_METHODS = ("fusion_average", "fusion_svm")


def svm_model_path(output_dir: str | Path) -> Path:
    """Where the fitted SVM of the fuse stage is pickled."""
    return Path(output_dir) / "fusion" / "svm.pkl"


def run_fuse(cfg: DictConfig, lists: SplitLists, run_log: RunLog) -> dict[str, Any]:
    """Fuse every stream's scores (average, SVM); write the fused scores, the SVM and the results.

    Any number of streams (``cfg.streams``) is fused; their score files must list the same videos.
    A single stream has nothing to fuse: its results are written without fusion methods.
    """
    streams = list(cfg.streams)
    output_dir = Path(cfg.paths.output_dir)
    train = [Scores.load(scores_path(output_dir, s, "train")) for s in streams]
    test = [Scores.load(scores_path(output_dir, s, "test")) for s in streams]
    for subset in (train, test):
        if any(list(sc.video_ids) != list(subset[0].video_ids) for sc in subset[1:]):
            raise StageError("the streams' score files list different videos; rerun stage=test for all streams")
    labels, classes = test[0].labels, [str(c) for c in test[0].classes]

    methods = FUSION_METHODS if len(streams) > 1 else ()
    method_scores = {s: sc.scores for s, sc in zip(streams, test, strict=True)}
    svm = None
    if methods:
        svm = fit_svm_fusion([sc.scores for sc in train], train[0].labels, C_grid=list(cfg.fusion.svm.C_grid),
                             cv_folds=cfg.fusion.svm.cv_folds, max_iter=cfg.fusion.svm.max_iter, seed=cfg.seed)
        svm.save(svm_model_path(output_dir), streams)
        method_scores["fusion_average"] = average_fusion([sc.scores for sc in test])
        method_scores["fusion_svm"] = svm.decision([sc.scores for sc in test])
    fused = {m: Scores(test[0].video_ids, labels, method_scores[m].astype(np.float32), test[0].classes)
             for m in methods}
    fused_files = [scores_path(output_dir, m, "test") for m in methods]
    for method, path in zip(methods, fused_files, strict=True):
        fused[method].save(path)

    accuracy = {s: sc.accuracy for s, sc in zip(streams, test, strict=True)} | {m: fused[m].accuracy
                                                                               for m in methods}
    per_class = {m: per_class_accuracy(s, labels, len(classes)) for m, s in method_scores.items()}
    results = {"experiment": cfg.name, "dataset": cfg.dataset.name, "split": cfg.dataset.split,
               "num_classes": len(lists.classes), "num_test_videos": len(labels),
               "chance": 1.0 / len(lists.classes), "svm_C": None if svm is None else svm.C, "accuracy": accuracy,
               "classes": classes,
               # JSON has no NaN: a class without test videos is null.
               "per_class_accuracy": {m: [None if np.isnan(a) else float(a) for a in acc]
                                      for m, acc in per_class.items()}}
    json_path, md_path = write_results(results, output_dir)
    print(format_markdown(results))

    run_log.set_summary({f"accuracy/{k}": v for k, v in accuracy.items()}
                        | {"chance": results["chance"], "svm_C": results["svm_C"]})
    run_log.log_table("results", ["method", "accuracy"], [[k, v] for k, v in accuracy.items()])
    run_log.log_table("per_class_accuracy", ["class", *method_scores],
                      [[c, *(results["per_class_accuracy"][m][i] for m in method_scores)]
                       for i, c in enumerate(classes)])
    for method, scores in method_scores.items():
        run_log.log_confusion_matrix(f"confusion/{method}", labels, scores.argmax(1), classes)
    run_log.log_artifact([json_path, md_path], name=f"{cfg.name}-results", type="results")
    if methods:
        run_log.log_artifact([svm_model_path(output_dir), *fused_files], name=f"{cfg.name}-fusion", type="fusion")
    return results
