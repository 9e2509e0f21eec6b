"""What the extract, train and test stages leave behind, logged to their W&B runs.

extract: a few videos' middle frame beside its colour-coded flow; train: the stream's checkpoint
(``tracking.log_checkpoints``); test: the stream's score files. The fuse stage logs its own tables,
confusion matrices and artefacts (twostream/fusion/stage.py).
"""

from omegaconf import DictConfig

from twostream.cache import open_cache
from twostream.data.splits import SplitLists
from twostream.rundir import RunDir
from twostream.tracking import Tracker
from twostream.tracking.flowviz import log_flow_samples


def log_stage_outputs(tracker: Tracker, cfg: DictConfig, lists: SplitLists, stage: str, stream: str | None) -> None:
    """Log the outputs of ``stage`` (of ``stream``, for train and test) to its run."""
    if not tracker.enabled:
        return
    if stage == "extract":
        log_flow_samples(tracker, open_cache(cfg), [v.id for v in lists.train + lists.test],
                         cfg.tracking.flow_samples)
    elif stage == "train" and cfg.tracking.log_checkpoints:
        tracker.log_artifact(RunDir(cfg.paths.output_dir).checkpoint(stream), name=f"{cfg.name}-{stream}-checkpoint", type="model")
    elif stage == "test":
        tracker.log_artifact([RunDir(cfg.paths.output_dir).scores(stream, subset) for subset in ("train", "test")],
                             name=f"{cfg.name}-{stream}-scores", type="scores")
