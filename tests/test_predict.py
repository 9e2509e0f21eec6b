"""`twostream predict`: a finished run classifies any video exactly as its test and fuse stages would."""

import json
import shutil
import sys
from pathlib import Path

import cv2
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import TINY
from conftest import twostream as run_twostream
from matplotlib.backends.backend_agg import FigureCanvasAgg
from omegaconf import OmegaConf
from PIL import Image

from twostream import __main__ as cli
from twostream import predict as predict_command
from twostream.errors import UserError
from twostream.predict import Prediction, TrainedRun, doubt, load_run, predict, predict_settings, video_files
from twostream.predict_viz import Caption, save_animation, save_picture

CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "clips"
# Trained long enough that the streams' scores differ between videos by ~1e-2 (2 epochs leave them
# within 1e-4 of uniform, where an equality to 1e-5 would say little); all training videos (no validation
# split: the tiny set has two training groups per class), no W&B: ~35 s.
TRAINED = [*TINY, "streams.spatial.epochs=8", "streams.temporal.epochs=8", "train.samples_per_video=4",
           "dataset.validation=null", "tracking.mode=disabled"]
METHODS = ["spatial", "temporal", "fusion_average", "fusion_svm"]
CAPTION = Caption("hd.avi", "true class: unknown", None, 8.0)


# every test here needs a trained run (45 s of the suite on 2 cores): the whole suite only
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """(the folder the run was made in, its output folder) of a finished tiny synthetic run."""
    cwd = tmp_path_factory.mktemp("predict")
    result = run_twostream(*TRAINED, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, cwd / "outputs/tiny"


def listed_videos(cwd: Path, run_dir: Path) -> tuple[list[str], list[Path]]:
    """The run's test video ids (score-file order) and their files."""
    cfg = OmegaConf.load(run_dir / ".hydra/config.yaml")
    root = cwd / OmegaConf.to_container(cfg.dataset, resolve=True)["video_root"]
    ids = [str(v) for v in np.load(run_dir / "scores/spatial_test.npz")["video_ids"]]
    return ids, [root / f"{video_id}.avi" for video_id in ids]


def run_scores(run_dir: Path, method: str) -> np.ndarray:
    return np.load(run_dir / f"scores/{method}_test.npz")["scores"]


def test_predict_gives_every_test_video_the_run_s_own_scores(run, tmp_path, monkeypatch, capsys):
    cwd, run_dir = run
    ids, videos = listed_videos(cwd, run_dir)
    # as a user types it: the console command's dispatch to predict, with --json
    monkeypatch.setattr(sys, "argv", ["twostream", "predict", str(run_dir), *map(str, videos),
                                      "--json", str(tmp_path / "p.json"), "--no-progress", "--top-k", "3"])
    cli.main()
    written = json.loads((tmp_path / "p.json").read_text())
    assert written["methods"] == METHODS and [v["video"] for v in written["videos"]] == list(map(str, videos))
    for method in METHODS:
        expected = run_scores(run_dir, method)
        # the comparison means something: the videos' scores differ by far more than the tolerance
        assert np.abs(expected - expected.mean(0)).max() > 1e-3, method
        got = np.array([v["scores"][method] for v in written["videos"]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=method)
        assert [v["top"][method][0]["class"] for v in written["videos"]] == \
            [written["classes"][i] for i in expected.argmax(1)]
    # each video is in the run's test list: its true class is shown, as the score files have it
    labels = np.load(run_dir / "scores/spatial_test.npz")["labels"]
    assert [v["truth"] for v in written["videos"]] == [{"class": written["classes"][i], "list": "test"} for i in labels]
    out = capsys.readouterr().out
    assert out.count("| rank | spatial | temporal | fusion_average | fusion_svm |") == len(videos)
    assert f"{videos[0]} (16 frames)\ntrue class: {written['classes'][labels[0]]} (in the run's test list)" in out


def test_a_single_stream_run_has_no_fusion_and_needs_no_svm(run, tmp_path):
    cwd, run_dir = run
    single = tmp_path / "temporal_only"
    shutil.copytree(run_dir, single, ignore=shutil.ignore_patterns("fusion", "spatial.pt"))
    cfg = OmegaConf.load(single / ".hydra/config.yaml")
    del cfg.streams["spatial"]  # the temporal checkpoint's settings do not involve the other stream
    OmegaConf.save(cfg, single / ".hydra/config.yaml")
    ids, videos = listed_videos(cwd, run_dir)
    trained = load_run(single)
    assert trained.methods == ["temporal"]
    got = np.stack([p.scores["temporal"] for p in predict(trained, videos[:3], progress=False)])
    np.testing.assert_allclose(got, run_scores(run_dir, "temporal")[:3], rtol=0, atol=1e-5)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25) -> Path:
    """An MJPG .avi of RGB frames."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_real_clips_and_a_1080p_clip_are_classified_and_pictured(run, tmp_path, textured_image):
    if not CLIPS.is_dir():
        pytest.skip(f"real clips folder {CLIPS} is not present (it ships beside the repo, not in it)")
    _, run_dir = run
    big = np.tile(textured_image, (12, 15, 1))[:1080]  # 1920 = 15 x 128: rolling keeps it seamless
    hd = write_video(tmp_path / "hd.avi", [np.roll(big, 6 * k, axis=1) for k in range(8)], fps=30)
    # a folder is searched for videos; two of them (an AVI at 320x240, 25 fps, and an MP4 at 340x256,
    # 28 fps) and the 1080p clip are classified: flow at full size costs ~25 ms a pair on this CPU
    assert [v.name for v in video_files([CLIPS])] == sorted(p.name for p in CLIPS.iterdir()
                                                            if p.suffix in (".avi", ".mp4"))
    videos = [CLIPS / "mmaction2_test.avi", CLIPS / "mmaction2_demo.mp4", hd]
    trained = load_run(run_dir, device="cpu")
    predictions = predict(trained, videos, samples=6, progress=False)
    for video, prediction in zip(videos, predictions, strict=True):
        capture = cv2.VideoCapture(str(video))
        frames, size = 0, (int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)))
        while capture.grab():
            frames += 1
        assert prediction.num_frames == frames, video
        # the synthetic run keeps the frames' size (dataset.short_side=null), as its extraction did
        assert prediction.frames.shape == (6, *size, 3) and prediction.flows.shape == (6, 2, *size)
        for stream in ("spatial", "temporal"):
            assert prediction.scores[stream].shape == (12,)
            assert prediction.scores[stream].sum() == pytest.approx(1, abs=1e-5)  # softmax, averaged
        assert prediction.truth is None  # not in the run's lists
    hd_flow = predictions[-1].flows[:, 0]  # the texture moves 6 px right per frame
    assert np.median(hd_flow) == pytest.approx(6, abs=0.5)

    prediction = predictions[-1]
    tops = {m: prediction.top(m, trained.classes, 5) for m in trained.methods}
    frames, flows, sampled = prediction.samples(4)
    assert sampled == [prediction.sampled[i] for i in (0, 2, 3, 5)]
    fig = save_picture(frames, flows, sampled, tops, CAPTION, tmp_path / "hd.png")
    # 4 frames, their 4 flow images, one bar chart per stream and fusion, in that order
    assert len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes[8:]] == METHODS
    assert [ax.get_title() for ax in fig.axes[:4]] == [f"frame {t}" for t in sampled]
    png = cv2.imread(str(tmp_path / "hd.png"))
    assert png.shape[:2] == tuple(round(x * 100) for x in fig.get_size_inches()[::-1])
    assert [len(ax.patches) for ax in fig.axes[8:]] == [5] * 4  # the top-5 bars

    frames, flows, sampled = prediction.samples(3)
    assert save_animation(frames, flows, sampled, tops, CAPTION, tmp_path / "hd.gif", fps=8) == 3
    assert Image.open(tmp_path / "hd.gif").n_frames == 3
    save_animation(frames, flows, sampled, tops, CAPTION, tmp_path / "hd.mp4", fps=8)
    assert cv2.VideoCapture(str(tmp_path / "hd.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_the_command_writes_the_picture_and_the_animation(run, tmp_path, capsys):
    cwd, run_dir = run
    _, videos = listed_videos(cwd, run_dir)
    predict_command.main([str(run_dir), str(videos[0]), "--visualise", str(tmp_path / "out.png"),
                            "--video", str(tmp_path / "out.gif"), "--animation-frames", "3", "--no-progress"])
    assert cv2.imread(str(tmp_path / "out.png")).shape[2] == 3
    assert Image.open(tmp_path / "out.gif").n_frames == 3
    assert capsys.readouterr().out.count("wrote ") == 2


def refused(run_dir: Path, videos: list[Path], monkeypatch, *, device: str | None = None) -> str:
    """The UserError predict raises, checked to come before any video is extracted."""
    def no_work(*args, **kwargs):
        raise AssertionError("extraction started before the error")

    monkeypatch.setattr(predict_command, "extract_videos", no_work)
    with pytest.raises(UserError) as error:
        predict(load_run(run_dir, device), videos, progress=False)
    return str(error.value)


def copy_of(run_dir: Path, tmp_path: Path, *without: str) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(*without))
    return copy


def test_clear_errors_before_any_work(run, tmp_path, monkeypatch, textured_image):
    cwd, run_dir = run
    _, videos = listed_videos(cwd, run_dir)
    good = videos[:1]
    message = refused(tmp_path, good, monkeypatch)
    assert f"{tmp_path / '.hydra/config.yaml'}: no such file" in message
    message = refused(copy_of(run_dir, tmp_path / "a", "checkpoints"), good, monkeypatch)
    assert "checkpoints/spatial.pt: no trained spatial model; run stage=train first" in message
    message = refused(copy_of(run_dir, tmp_path / "b", "fusion"), good, monkeypatch)
    assert "fusion/svm.pkl: no fitted SVM" in message and "stage=fuse" in message

    short = write_video(tmp_path / "short.avi", [np.roll(textured_image, k, axis=1) for k in range(4)])
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    message = refused(run_dir, [*good, short, broken], monkeypatch)
    assert message.startswith("2 video(s) cannot be classified") and str(videos[0]) not in message
    assert f"{short}: 4 frame(s), need at least 6" in message  # L=5: a stack needs 6 frames
    assert f"{broken}: OpenCV cannot open it as a video" in message


def test_a_run_whose_estimator_or_device_needs_a_gpu_is_refused_without_one(run, tmp_path, monkeypatch):
    import torch  # noqa: PLC0415

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    cwd, run_dir = run
    _, videos = listed_videos(cwd, run_dir)
    message = refused(run_dir, videos[:1], monkeypatch, device="cuda")
    assert "--device='cuda' but torch" in message
    brox = copy_of(run_dir, tmp_path, "checkpoints")
    cfg = OmegaConf.load(brox / ".hydra/config.yaml")
    cfg.flow = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/flow/brox.yaml")
    OmegaConf.save(cfg, brox / ".hydra/config.yaml")
    message = refused(brox, videos[:1], monkeypatch)
    assert "flow=brox" in message and "needs OpenCV built with CUDA" in message


# --- the picture: truth and doubt in the title, flow on a fixed scale in px, aspect kept, no label overlaps

def texts_overlap(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of ``fig`` whose drawn boxes intersect, texts that run into a bar
    of a bar chart, and texts cut by the picture's edge."""
    canvas = FigureCanvasAgg(fig)  # the figure may have been closed (saved) already
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = list(fig.texts)  # the title among them
    for ax in fig.axes:
        texts += [ax.title, *ax.texts]
        if ax.axison:  # an image's axes are off: their ticks are not drawn
            texts += [ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
    texts = [t for t in texts if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    hits = [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]
    bars = [patch.get_window_extent(renderer) for ax in fig.axes for patch in ax.patches]
    picture = fig.bbox
    return (hits + [(text, "a bar") for text, box in boxes for bar in bars if box.overlaps(bar)]
            + [(text, "the picture's edge") for text, box in boxes
               if box.x0 < picture.x0 or box.x1 > picture.x1 or box.y0 < picture.y0 or box.y1 > picture.y1])


def test_the_picture_keeps_a_portrait_clip_s_aspect_shows_flow_in_px_and_no_label_overlaps(tmp_path, textured_image):
    portrait = np.ascontiguousarray(np.rot90(textured_image))  # 128 high, 96 wide
    frames = np.stack([portrait] * 3)
    flows = np.zeros((3, 2, 128, 96), np.float32)
    flows[0, 0] = 1.4  # noise-sized motion: must stay dim
    flows[1, 1] = 8.0  # the full-scale displacement
    flows[2, 0] = 20.0  # beyond it: clipped to full
    tops = {"spatial": [("walk", 0.45), ("run", 0.3), ("jump", 0.25)],
            "temporal": [("run", 0.5), ("walk", 0.4), ("jump", 0.1)],
            "fusion_average": [("run", 0.4), ("walk", 0.425), ("jump", 0.175)],
            "fusion_svm": [("run", 0.12), ("walk", -0.35), ("jump_very_long_class_name", -1.75)]}
    caption = Caption("portrait.avi", "true class: walk (in the run's test list)",
                      "may show none of the run's classes (heuristic: top probability 0.42 is only 0.13 of the way "
                      "from chance (0.33) to certainty, < 0.5; the streams disagree (spatial: walk, temporal: "
                      "run))", 8.0)
    fig = save_picture(frames, flows, [0, 5, 9], tops, caption, tmp_path / "p.png")
    frame_axes, flow_axes = fig.axes[:3], fig.axes[3:6]
    for ax in frame_axes + flow_axes:  # the whole image, no padding, in a box of its own aspect
        assert ax.get_images()[0].get_array().shape[:2] == (128, 96)
        box = ax.get_window_extent()
        assert box.height / box.width == pytest.approx(128 / 96, rel=0.03)
    brightness = [np.asarray(ax.get_images()[0].get_array()).max(axis=2) for ax in flow_axes]  # HSV value = max(R, G, B)
    assert np.median(brightness[0]) == pytest.approx(1.4 / 8 * 255, abs=2)
    assert np.median(brightness[1]) == np.median(brightness[2]) == 255
    title = fig._suptitle
    assert "true class: walk (in the run's test list)" in title.get_text()
    assert "doubt: may show none of the run's classes (heuristic:" in title.get_text()
    assert "full at 8 px, the same scale for every picture" in title.get_text().replace("\n", " ")
    assert matplotlib.colors.same_color(title.get_color(), "tab:red")
    assert [label.get_text() for label in fig.axes[-1].get_yticklabels()] == [
        "jump_very_long_class_name -1.8", "walk -0.35", "run 0.12"]
    assert texts_overlap(fig) == []
    png = cv2.imread(str(tmp_path / "p.png"))
    assert png.shape[:2] == tuple(round(x * 100) for x in fig.get_size_inches()[::-1])


def test_the_old_picture_s_value_labels_did_overlap(tmp_path):
    """The check above can fail: a value label at the end of a negative bar, as the picture had it, runs
    into the class names."""
    fig, ax = plt.subplots(figsize=(2.4, 2.6), layout="constrained")
    bars = ax.barh(range(3), [-1.75, -0.35, 0.12])
    ax.set_yticks(range(3), ["jump", "walk", "run"])
    ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    assert texts_overlap(fig)
    plt.close(fig)


def doubt_of(scores: dict[str, list[float]], classes: tuple[str, ...] = ("walk", "run", "jump")) -> str | None:
    run = TrainedRun(Path("run"), OmegaConf.create({}), list(classes),
                     {s: {} for s in ("spatial", "temporal") if s in scores}, None, [], None)
    arrays = {m: np.array(v) for m, v in scores.items()}
    if len(run.weights) > 1:
        arrays["fusion_average"] = (arrays["spatial"] + arrays["temporal"]) / 2
    return doubt(Prediction(Path("v.avi"), 10, arrays, np.empty(0), np.empty(0), []), run, predict_settings())


def test_the_doubt_heuristic_names_a_weak_top_class_and_disagreeing_streams():
    settings = predict_settings()
    assert settings.doubt.min_confidence == 0.5 and settings.doubt.streams_disagree is True
    assert doubt_of({"spatial": [0.8, 0.1, 0.1], "temporal": [0.7, 0.2, 0.1]}) is None
    # 0.475 of 3 classes: (0.475 - 1/3) / (2/3) = 0.21 of the way from chance to certainty
    assert doubt_of({"spatial": [0.45, 0.3, 0.25], "temporal": [0.5, 0.3, 0.2]}) == (
        "may show none of the run's classes (heuristic: top probability 0.47 is only 0.21 of the way from "
        "chance (0.33) to certainty, < 0.5)")
    assert doubt_of({"spatial": [0.95, 0.05, 0.0], "temporal": [0.45, 0.5, 0.05]}) == (  # average 0.7: 0.55
        "may show none of the run's classes (heuristic: the streams disagree (spatial: walk, temporal: run))")
    assert doubt_of({"temporal": [0.6, 0.25, 0.15]}) == (  # one stream: its own probability
        "may show none of the run's classes (heuristic: top probability 0.60 is only 0.40 of the way from "
        "chance (0.33) to certainty, < 0.5)")
    # two classes: a top probability of 0.7 is weak (0.4), which a plain 0.5 threshold could never say
    assert "0.70 is only 0.40 of the way from chance (0.50)" in doubt_of(
        {"temporal": [0.7, 0.3]}, classes=["walk", "run"])
