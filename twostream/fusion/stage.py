"""The fuse stage: fuse the streams' test scores and write the results table."""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from twostream.data.splits import SplitLists
from twostream.errors import StageError
from twostream.fusion import average_fusion, fit_svm_fusion
from twostream.report import format_markdown, write_results
from twostream.tracking import Tracker
from twostream.train.evaluate import Scores, scores_path


def run_fuse(cfg: DictConfig, lists: SplitLists, tracker: Tracker) -> dict[str, Any]:
    """Fuse every stream's scores (average, SVM), write results.json / results.md, print the table."""
    streams = list(cfg.streams)
    train = [Scores.load(scores_path(cfg.paths.output_dir, s, "train")) for s in streams]
    test = [Scores.load(scores_path(cfg.paths.output_dir, s, "test")) for s in streams]
    for subset in (train, test):
        if any(list(sc.video_ids) != list(subset[0].video_ids) for sc in subset[1:]):
            raise StageError("the streams' score files list different videos; rerun stage=test for all streams")
    labels = test[0].labels
    accuracy = {s: sc.accuracy for s, sc in zip(streams, test, strict=True)}
    fused = average_fusion([sc.scores for sc in test])
    accuracy["fusion_average"] = float((fused.argmax(1) == labels).mean())
    svm = fit_svm_fusion([sc.scores for sc in train], train[0].labels, C_grid=list(cfg.fusion.svm.C_grid),
                         cv_folds=cfg.fusion.svm.cv_folds, max_iter=cfg.fusion.svm.max_iter, seed=cfg.seed)
    accuracy["fusion_svm"] = float((svm.decision([sc.scores for sc in test]).argmax(1) == labels).mean())
    results = {"experiment": cfg.name, "dataset": cfg.dataset.name, "split": cfg.dataset.split,
               "num_classes": len(lists.classes), "num_test_videos": len(labels),
               "chance": 1.0 / len(lists.classes), "svm_C": svm.C, "accuracy": accuracy}
    json_path, _ = write_results(results, Path(cfg.paths.output_dir))
    print(format_markdown(results))
    tracker.set_summary({f"accuracy/{k}": v for k, v in accuracy.items()} | {"chance": results["chance"]})
    tracker.log_table("results", ["method", "accuracy"], [[k, v] for k, v in accuracy.items()])
    tracker.log_artifact(json_path, name=f"{cfg.name}-results", type="results")
    return results
