"""``twostream predict RUN_DIR VIDEO|FOLDER ...``: classify any video with a trained run, and show why.

The run's own stages do the work, so a video gets exactly the scores the test stage would give it:

- its composed config (``RUN_DIR/.hydra/config.yaml``) says how to extract, which streams, the test
  protocol; its checkpoints are loaded and checked as the test stage does
  (:func:`~twostream.train.stage.trained_state`), its SVM as the fuse stage wrote it;
- the videos are extracted by :func:`~twostream.cache.extract.extract_videos` into a temporary cache
  made with the run's cache settings: the same decoding, resize, estimator and parameters, clipping
  and uint8 quantisation, and the same chunk codec (JPEG by default: a lossy step the stored values
  went through, which is why an in-memory shortcut would not give the same numbers);
- each stream reads them through its input source (:func:`~twostream.train.stage.input_source`) and
  is scored with the test protocol (:class:`~twostream.train.evaluate.TestProtocol`: every position's
  crops batched, flow computed once per video for all positions);
- the streams are fused with :func:`~twostream.fusion.average_fusion` and the run's SVM.

Everything that can be refused is refused before any video is extracted: a run folder without its
config, checkpoints or SVM, a video that does not open or is too short for the flow stack, an
estimator that needs a GPU on a machine without one. Only a video whose header promises more frames
than it holds is found out later, when it is decoded.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from twostream.cache import cache_fingerprint, cache_layout
from twostream.cache.extract import ExtractSettings, extract_videos
from twostream.cache.frames import FrameSelection, evenly_spaced
from twostream.cache.store import FlowCache
from twostream.configs import config_dir
from twostream.data.splits import Video
from twostream.data.video import VideoDecodeError, probe_video
from twostream.devices import resolve_device
from twostream.errors import MissingDataError, StageError, UserError
from twostream.flow import get_estimator
from twostream.fusion import SvmFusion, average_fusion
from twostream.inputs.datasets import InputSource
from twostream.models import StreamNet
from twostream.predict_viz import Caption, save_animation, save_picture
from twostream.rundir import RunDir
from twostream.scores import Scores
from twostream.train.evaluate import TestProtocol
from twostream.train.stage import frames_needed, input_source, stream_model, trained_state


@dataclass
class TrainedRun:
    """A finished run, ready to classify: its config, class names, each stream's trained weights
    (checked against the config) and the fitted SVM (None for a single stream)."""

    run_dir: Path
    cfg: DictConfig
    classes: list[str]
    weights: dict[str, dict[str, torch.Tensor]]
    svm: SvmFusion | None
    svm_streams: list[str]
    device: torch.device

    @property
    def methods(self) -> list[str]:
        """What a video gets scores from: each stream, then both fusions when there are several streams."""
        return [*self.weights, *(("fusion_average", "fusion_svm") if self.svm is not None else ())]


@dataclass
class Prediction:
    """One video's scores per method (stream or fusion), and a few of its frames with their flow.

    ``frames`` (k, H, W, 3) uint8 and ``flows`` (k, 2, H, W) float32 pixels are the frames
    ``sampled`` (indices into the video's frames) and the forward flow from each to the next, as the
    run's cache would hold them; k is 0 unless asked for.
    """

    video: Path
    num_frames: int
    scores: dict[str, np.ndarray]
    frames: np.ndarray
    flows: np.ndarray
    sampled: list[int]
    truth: "Truth | None" = None  # the video's class, when the run's lists hold it

    def samples(self, count: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """``count`` evenly spaced ones of the kept frames, their flows and frame indices (the
        picture and the animation each take their own number of the frames kept for both)."""
        keep = evenly_spaced(count, len(self.sampled))
        return self.frames[keep], self.flows[keep], [self.sampled[i] for i in keep]

    def top(self, method: str, classes: Sequence[str], k: int) -> list[tuple[str, float]]:
        """The ``k`` best classes of ``method`` with their scores, best first."""
        scores = self.scores[method]
        return [(classes[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:k]]


@dataclass(frozen=True)
class Truth:
    """A video's class as the run's split lists give it, and which list holds it (train, val, test)."""

    label: str
    subset: str


def listed_truths(run: "TrainedRun") -> dict[str, Truth]:
    """Every video of the run's lists (video id -> its class and list), from its score files, which name
    each video by its path under the dataset's video root without the extension."""
    truths = {}
    for subset in ("train", "val", "test"):
        path = RunDir(run.run_dir).scores(next(iter(run.weights)), subset)
        if path.is_file():  # no val file for a run without a validation split
            listed = Scores.load(path)
            truths |= {str(v): Truth(str(listed.classes[label]), subset)
                       for v, label in zip(listed.video_ids, listed.labels, strict=True)}
    return truths


def truth_of(video: Path, truths: dict[str, Truth]) -> Truth | None:
    """``video``'s entry in ``truths``: the id its path ends with (``<class>/<name>`` for a folder or
    UCF-style dataset), so a listed video is found wherever the dataset's root is on this machine."""
    parts = video.with_suffix("").parts
    for depth in sorted({len(Path(v).parts) for v in truths}, reverse=True):
        found = truths.get("/".join(parts[-depth:]))
        if found is not None:
            return found
    return None


def doubt(prediction: "Prediction", run: "TrainedRun", settings: DictConfig) -> str | None:
    """Why the prediction may be wrong because the video shows none of the run's classes, by the
    heuristic of ``conf/predict/default.yaml`` (``doubt``): the top class's probability p (the streams'
    average) is weak for the number of classes C, its confidence (p - 1/C) / (1 - 1/C) (0 at chance, 1 at
    certainty) below ``min_confidence``, or the streams' top classes differ; None when neither holds."""
    streams = list(run.weights)
    average = prediction.scores["fusion_average"] if len(streams) > 1 else prediction.scores[streams[0]]
    top, chance = float(average.max()), 1 / len(run.classes)
    confidence = (top - chance) / (1 - chance)
    reasons = []
    if confidence < settings.doubt.min_confidence:
        reasons.append(f"top probability {top:.2f} is only {confidence:.2f} of the way from chance "
                       f"({chance:.2f}) to certainty, < {settings.doubt.min_confidence:g}")
    tops = {stream: run.classes[int(prediction.scores[stream].argmax())] for stream in streams}
    if settings.doubt.streams_disagree and len(set(tops.values())) > 1:
        reasons.append("the streams disagree (" + ", ".join(f"{s}: {c}" for s, c in tops.items()) + ")")
    if not reasons:
        return None
    return "may show none of the run's classes (heuristic: " + "; ".join(reasons) + ")"


def predict_settings() -> DictConfig:
    """The predict command's settings (``conf/predict/default.yaml``)."""
    return OmegaConf.load(config_dir() / "predict" / "default.yaml")


def load_run(run_dir: str | Path, device: str | None = None) -> TrainedRun:
    """The run in ``run_dir`` (an experiment's output folder) with its streams on ``device``
    (None: the run's own ``device`` setting); raises a UserError naming what is missing."""
    folder = RunDir(run_dir)
    config = folder.config
    if not config.is_file():
        raise MissingDataError(f"{config}: no such file; RUN_DIR must be a finished run's output folder "
                               "(e.g. outputs/quickstart), which holds the config the run was composed with")
    cfg = OmegaConf.load(config)
    cfg.paths.output_dir = str(folder)  # Hydra's ${hydra:runtime.output_dir}, which only Hydra resolves
    if device is not None and (cfg.flow.get("runtime") or {}).get("device") is not None:
        cfg.flow.runtime.device = device  # where flow is computed is runtime, not part of its fingerprint
    try:
        run_device = resolve_device(device or cfg.device, key="--device" if device else "device")
        get_estimator(cfg.flow.name, **ExtractSettings.from_config(cfg).params)
    except (RuntimeError, ValueError) as error:
        raise StageError(f"{config}: this run's flow (flow={cfg.flow.name}) or device cannot run on this machine: "
                         f"{error}\nPredict on a machine like the one the run was made on "
                         "(or pass --device cpu where the estimator allows it).") from error
    streams = list(cfg.streams)
    svm, svm_streams = None, []
    if len(streams) > 1:  # one stream is not fused (the fuse stage writes no SVM for it)
        svm_path = folder.svm_model
        if not svm_path.is_file():
            raise MissingDataError(f"{svm_path}: no fitted SVM; this run's fuse stage has not run. Run it "
                                   f"(python -m twostream <the run's overrides> stage=fuse) and predict again")
        svm, svm_streams = SvmFusion.load(svm_path)
    classes = [str(c) for c in Scores.load(folder.scores(streams[0], "test")).classes]
    fingerprint = cache_fingerprint(cfg)
    weights = {stream: trained_state(cfg, stream, folder, fingerprint)["model"] for stream in streams}
    return TrainedRun(folder.root, cfg, classes, weights, svm, svm_streams, run_device)


def trained_model(run: TrainedRun, stream: str, source: InputSource) -> StreamNet:
    """The stream's network for ``source``'s inputs with the run's trained weights."""
    weights = run.weights[stream]
    # The heads' sizes come from the checkpoint: a multi-task net has one head per dataset (only the
    # first, the evaluated dataset's, is scored), and the other datasets need not be on this machine.
    heads = sum(k.startswith("heads.") and k.endswith(".weight") for k in weights)
    model = stream_model(run.cfg, run.cfg.streams[stream], source,
                         [weights[f"heads.{i}.weight"].shape[0] for i in range(heads)])
    model.load_state_dict(weights)
    return model


def video_files(paths: Sequence[str | Path]) -> list[Path]:
    """The videos named: files as given, folders searched (recursively, sorted) for the extensions a
    ``dataset=folder`` dataset takes (``conf/dataset/folder.yaml``)."""
    extensions = {e.lower() for e in OmegaConf.load(config_dir() / "dataset" / "folder.yaml").extensions}
    videos = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            if not found:
                raise MissingDataError(f"{path}: no video in this folder (looked for {', '.join(sorted(extensions))})")
            videos.extend(found)
        else:
            videos.append(path)
    return videos


def check_videos(run: TrainedRun, videos: Sequence[Path]) -> None:
    """Refuse, naming every bad one at once, videos that do not open or are too short for the run."""
    needed = max(2, frames_needed(run.cfg))  # flow needs 2 frames; a stack of L fields L+1
    problems = []
    for video in videos:
        try:
            probe_video(video, needed)
        except VideoDecodeError as error:
            problems.append(str(error))
    if problems:
        raise VideoError(problems, needed)


class VideoError(UserError, ValueError):
    """Videos that cannot be classified with the run; the message names each one and why."""

    def __init__(self, problems: Sequence[str], needed: int) -> None:
        super().__init__(f"{len(problems)} video(s) cannot be classified (this run needs videos that decode to "
                         f"at least {needed} frames: a flow stack of L fields needs L+1):\n  " + "\n  ".join(problems))


@contextmanager
def extracted(run: TrainedRun, videos: Sequence[Path], progress: bool = True) -> Iterator[tuple[FlowCache, list[Video]]]:
    """The videos extracted as the run extracted its own, into a temporary cache (deleted afterwards)."""
    cfg = run.cfg
    listed = [Video(f"{i:05d}", path, -1, None) for i, path in enumerate(videos)]
    with tempfile.TemporaryDirectory(prefix="twostream-predict-") as tmp:
        # Every frame, whatever the run's cache.frames: the test protocol scores the same frames
        # either way, and the shown samples need frames the run's cache may not keep.
        cache = FlowCache(Path(tmp) / "cache.zarr", cache_fingerprint(cfg, FrameSelection()), writable=True,
                          layout=dataclasses.replace(cache_layout(cfg), frames=FrameSelection()))
        extract_videos(listed, cache, ExtractSettings.from_config(cfg), prefetch=cfg.extract.prefetch,
                       progress=progress)
        needed = max(2, frames_needed(cfg))
        failed = cache.failures()
        problems = [failed[v.id] for v in listed if v.id in failed]
        problems += [f"{v.path}: decoded {cache.num_frames(v.id)} frame(s), need at least {needed}"
                     for v in listed if v.id not in failed and cache.num_frames(v.id) < needed]
        if problems:
            raise VideoError(problems, needed)
        yield cache, listed


def predict(run: TrainedRun, videos: Sequence[Path], *, samples: int = 0, progress: bool = True) -> list[Prediction]:
    """Each video's scores per stream and fusion, as the run's test and fuse stages compute them;
    with ``samples``, that many evenly spaced frames of each video with their flow are kept."""
    check_videos(run, videos)
    cfg = run.cfg
    protocol = TestProtocol.from_config(cfg, run.device, progress)
    with extracted(run, videos, progress) as (cache, listed):
        scores = {}
        for stream in run.weights:
            source = input_source(cfg.streams[stream], cache)
            scores[stream] = protocol.score(trained_model(run, stream, source), source, listed, run.classes).scores
        if run.svm is not None:
            scores["fusion_average"] = average_fusion([scores[s] for s in run.weights])
            scores["fusion_svm"] = run.svm.decision([scores[s] for s in run.svm_streams])
        predictions, truths = [], listed_truths(run)
        for row, video in enumerate(listed):
            sampled = evenly_spaced(samples, cache.num_flows(video.id)) if samples else []
            frames = np.stack([cache.read_frames(video.id, t)[0] for t in sampled]) if sampled else np.empty(0)
            flows = np.stack([cache.read_flow(video.id, t, 1)[0] for t in sampled]) if sampled else np.empty(0)
            predictions.append(Prediction(video.path, cache.num_frames(video.id),
                                          {m: s[row] for m, s in scores.items()}, frames, flows, sampled,
                                          truth_of(video.path, truths)))
    return predictions


def truth_line(truth: Truth | None) -> str:
    """What the picture and the table say of the video's true class."""
    if truth is None:
        return "true class: unknown (the video is not in the run's lists)"
    return f"true class: {truth.label} (in the run's {truth.subset} list)"


def format_table(prediction: Prediction, run: TrainedRun, top_k: int, doubted: str | None = None) -> str:
    """A Markdown table of one video's ``top_k`` classes (rows) per stream and fusion (columns), under its
    true class (when the run's lists hold it) and the doubt (``doubted``), if any."""
    methods = run.methods
    tops = [prediction.top(m, run.classes, top_k) for m in methods]
    lines = [f"{prediction.video} ({prediction.num_frames} frames)", truth_line(prediction.truth),
             *([f"doubt: {doubted}"] if doubted else []), "",
             "| rank | " + " | ".join(methods) + " |", "|---:|" + "---|" * len(methods)]
    lines += [f"| {rank + 1} | " + " | ".join(f"{top[rank][0]} {top[rank][1]:.3g}" for top in tops) + " |"
              for rank in range(min(top_k, len(run.classes)))]
    return "\n".join(lines)


def as_json(predictions: Sequence[Prediction], run: TrainedRun, top_k: int,
            doubts: Sequence[str | None] | None = None) -> dict[str, Any]:
    """What ``--json`` writes: per video, its true class and list (null when not listed), the doubt
    (null when none), the top classes and every class's score of each method."""
    doubts = doubts or [None] * len(predictions)
    return {"run": str(run.run_dir), "classes": run.classes, "methods": run.methods,
            "videos": [{"video": str(p.video), "num_frames": p.num_frames,
                        "truth": None if p.truth is None else {"class": p.truth.label, "list": p.truth.subset},
                        "doubt": d,
                        "top": {m: [{"class": c, "score": s} for c, s in p.top(m, run.classes, top_k)]
                                for m in run.methods},
                        "scores": {m: [float(s) for s in p.scores[m]] for m in run.methods}}
                       for p, d in zip(predictions, doubts, strict=True)]}


def output_paths(path: Path | None, predictions: Sequence[Prediction]) -> list[Path | None]:
    """``path`` for one video; ``<stem>_<n>_<video stem><suffix>`` beside it, one per video, for several
    (None for each when no path is given)."""
    if path is None or len(predictions) == 1:
        return [path] * len(predictions)
    return [path.with_name(f"{path.stem}_{i:03d}_{p.video.stem}{path.suffix}") for i, p in enumerate(predictions)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(
        prog="twostream predict", description="Classify videos with a trained twostream run: top classes per "
        "stream and fused (average and SVM), scored exactly as the run's test stage scores its test videos.")
    parser.add_argument("run_dir", type=Path, help="the run's output folder (e.g. outputs/quickstart)")
    parser.add_argument("videos", nargs="+", help="video files, or folders searched for videos")
    parser.add_argument("--top-k", type=int, default=5, help="classes shown per stream and fusion (default 5)")
    parser.add_argument("--json", type=Path, help="also write every video's top classes and scores here")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the run's device setting)")
    parser.add_argument("--visualise", "--visualize", type=Path, metavar="OUT.png",
                        help="a picture per video: sampled frames, their colour-coded flow, the top classes")
    parser.add_argument("--video", type=Path, metavar="OUT.gif|OUT.mp4",
                        help="the same as an animation over the video's frames")
    parser.add_argument("--samples", type=int, default=4, help="frames in the picture (default 4)")
    parser.add_argument("--animation-frames", type=int, default=48,
                        help="frames of the animation, evenly spaced over the video (default 48)")
    parser.add_argument("--fps", type=float, default=8, help="frames per second of the animation (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.video is not None and args.video.suffix.lower() not in (".gif", ".mp4", ".avi"):
        parser.error(f"--video {args.video}: give a .gif, .mp4 or .avi file")
    for name in ("top_k", "samples", "animation_frames"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def run_command(args: argparse.Namespace) -> list[Prediction]:
    """Load the run, classify the videos, print the tables and write what the options ask for."""
    run = load_run(args.run_dir, args.device)
    videos = video_files(args.videos)
    samples = max(args.samples if args.visualise else 0, args.animation_frames if args.video else 0)
    settings = predict_settings()
    predictions = predict(run, videos, samples=samples, progress=not args.no_progress)
    doubts = [doubt(prediction, run, settings) for prediction in predictions]
    for prediction, doubted in zip(predictions, doubts, strict=True):
        print(format_table(prediction, run, args.top_k, doubted), end="\n\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(as_json(predictions, run, args.top_k, doubts), indent=1) + "\n")
    for prediction, doubted, picture, animation in zip(predictions, doubts, output_paths(args.visualise, predictions),
                                                       output_paths(args.video, predictions), strict=True):
        tops = {m: prediction.top(m, run.classes, args.top_k) for m in run.methods}
        caption = Caption(str(prediction.video), truth_line(prediction.truth), doubted, settings.flow_full_scale_px)
        if picture is not None:
            save_picture(*prediction.samples(args.samples), tops, caption, picture)
            print(f"wrote {picture}")
        if animation is not None:
            save_animation(*prediction.samples(args.animation_frames), tops, caption, animation, args.fps)
            print(f"wrote {animation}")
    return predictions


def main(argv: Sequence[str] | None = None) -> None:
    """``twostream predict`` / ``python -m twostream.predict``: an expected failure ends with its message
    and exit code 1."""
    args = parse_args(argv)
    try:
        run_command(args)
    except UserError as error:
        print(f"twostream predict: error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
