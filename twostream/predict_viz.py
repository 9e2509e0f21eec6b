"""Pictures of a prediction (``twostream predict --visualise/--video``): what the streams saw, what they said.

A picture has three rows: sampled frames (what the spatial stream sees), their colour-coded forward
flow (what the temporal stream sees: hue = direction, brightness = magnitude on a fixed scale in
pixels, ``conf/predict/default.yaml``; :func:`twostream.flow.viz.flow_to_rgb`), and a bar
chart of the top classes of each stream and fusion, each class named with its score. Its title says
the video, its true class when the run's lists hold it, and the doubt, if any (in red). Images keep
their aspect ratio, portrait or landscape, with no padding. An animation shows frame and flow side by
side over the video, above the same bars.
"""

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from matplotlib.animation import PillowWriter  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.gridspec import SubplotSpec  # noqa: E402

from twostream.flow.viz import flow_to_rgb  # noqa: E402

Top = list[tuple[str, float]]  # (class, score), best first
COLOURS = {"spatial": "tab:blue", "temporal": "tab:orange", "fusion_average": "tab:green", "fusion_svm": "tab:red"}
PANEL_INCHES = 2.4  # width of one image or chart
BARS_INCHES, TITLE_LINE_INCHES = 2.6, 0.2  # height of the row of bar charts, of a line of the title
TITLE_CHARS_PER_INCH = 11  # characters of the 10-point title per inch (wider ones are wrapped)
SHOWN_WIDTH = 480  # images are shrunk to this many pixels wide first: a panel shows no more (and a
                   # 1080p frame would make every drawing of an animation slow)


@dataclass
class Caption:
    """What a picture's title says: the video, its true class (or that it is unknown), the doubt
    (None: none), and the displacement in pixels at which the flow's brightness is full."""

    video: str
    truth: str
    doubt: str | None
    flow_full_scale_px: float

    def text(self, width: float) -> str:
        """The caption's lines, each wrapped to fit ``width`` inches of the title's font."""
        lines = [self.video, self.truth, *([f"doubt: {self.doubt}"] if self.doubt else []),
                 f"flow: hue = direction, brightness = magnitude (full at {self.flow_full_scale_px:g} px, "
                 "the same scale for every picture)"]
        chars = max(20, int(width * TITLE_CHARS_PER_INCH))
        return "\n".join(wrapped for line in lines for wrapped in textwrap.wrap(line, chars))


def _bars(ax: Axes, method: str, top: Top) -> None:
    """A horizontal bar chart of ``top``, best at the top, each class named with its score beside its
    bar's axis (never on the bars: a negative SVM margin's bar would run into a label put at its end);
    an SVM's scores are margins, not probabilities."""
    names, scores = [c for c, _ in top][::-1], [s for _, s in top][::-1]
    ax.barh(range(len(top)), scores, color=COLOURS.get(method, "tab:grey"))
    ax.set_yticks(range(len(top)), [f"{name} {score:.2g}" for name, score in zip(names, scores, strict=True)],
                  fontsize=8)
    ax.set_title(method, fontsize=9)  # the top class is the first label: a long name above a narrow chart would overflow
    ax.tick_params(axis="x", labelsize=7)
    if method != "fusion_svm":
        ax.set_xlabel("softmax score", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1])
    else:  # margins of any size and sign: their values are in the labels, so no ticks (or offset text) to collide
        ax.set_xlabel("SVM margin", fontsize=8)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set_xticks([])


def _shown(image: np.ndarray) -> np.ndarray:
    """``image`` at most :data:`SHOWN_WIDTH` pixels wide (aspect kept)."""
    height, width = image.shape[:2]
    if width <= SHOWN_WIDTH:
        return image
    return cv2.resize(image, (SHOWN_WIDTH, max(1, round(height * SHOWN_WIDTH / width))), interpolation=cv2.INTER_AREA)


def _image(ax: Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(_shown(image))
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _figure(columns: int, image_rows: int, aspect: float, caption: Caption) -> tuple[Figure, list[SubplotSpec]]:
    """A figure ``columns`` panels wide: ``image_rows`` rows for images of height/width ``aspect`` (one
    image per column), then a row for the bar charts, under the caption's lines; returns it and its rows."""
    image_height = PANEL_INCHES * aspect
    title_height = TITLE_LINE_INCHES * (caption.text(PANEL_INCHES * columns).count("\n") + 1)
    fig = plt.figure(figsize=(PANEL_INCHES * columns, image_rows * image_height + BARS_INCHES + title_height),
                     layout="constrained")
    return fig, list(fig.add_gridspec(image_rows + 1, 1, height_ratios=[image_height] * image_rows + [BARS_INCHES]))


def _finish(fig: Figure, row: SubplotSpec, tops: dict[str, Top], caption: Caption) -> None:
    """The bar charts of every method in ``row``, and the title (red when the prediction is doubted)."""
    bars = row.subgridspec(1, len(tops))
    for j, (method, top) in enumerate(tops.items()):
        _bars(fig.add_subplot(bars[0, j]), method, top)
    fig.suptitle(caption.text(fig.get_figwidth()), fontsize=10, color="tab:red" if caption.doubt else "black")


def picture(frames: np.ndarray, flows: np.ndarray, sampled: Sequence[int], tops: dict[str, Top],
            caption: Caption) -> Figure:
    """Frames (k, H, W, 3), their flow (k, 2, H, W) and each method's top classes as one figure:
    k frame axes, k flow axes, one bar-chart axes per method (in that order in ``figure.axes``)."""
    k, columns = len(frames), max(len(frames), len(tops))
    height, width = frames.shape[1:3]
    fig, rows = _figure(columns, 2, columns / k * height / width, caption)
    images, charts = rows[0].subgridspec(1, k), rows[1].subgridspec(1, k)
    for j, t in enumerate(sampled):
        _image(fig.add_subplot(images[0, j]), frames[j], f"frame {t}")
    for j, t in enumerate(sampled):
        _image(fig.add_subplot(charts[0, j]), flow_to_rgb(flows[j], caption.flow_full_scale_px), f"flow {t}\u2192{t + 1}")
    _finish(fig, rows[2], tops, caption)
    return fig


def save_picture(frames: np.ndarray, flows: np.ndarray, sampled: Sequence[int], tops: dict[str, Top],
                 caption: Caption, path: Path, dpi: int = 100) -> Figure:
    """:func:`picture` written to ``path`` (PNG, or any format matplotlib writes); returns the figure."""
    fig = picture(frames, flows, sampled, tops, caption)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return fig


def save_animation(frames: np.ndarray, flows: np.ndarray, sampled: Sequence[int], tops: dict[str, Top],
                   caption: Caption, path: Path, fps: float, dpi: int = 80) -> int:
    """Frame and flow side by side over the video, the top classes below: a GIF (Pillow, through
    matplotlib) or an MP4/AVI (OpenCV). Returns the number of frames written."""
    height, width = frames.shape[1:3]
    columns = max(2, len(tops))
    fig, rows = _figure(columns, 1, columns / 2 * height / width, caption)
    top_row = rows[0].subgridspec(1, 2)
    scale = caption.flow_full_scale_px
    frame_ax, flow_ax = fig.add_subplot(top_row[0, 0]), fig.add_subplot(top_row[0, 1])
    shown = [frame_ax.imshow(_shown(frames[0])), flow_ax.imshow(_shown(flow_to_rgb(flows[0], scale)))]
    for ax in (frame_ax, flow_ax):
        ax.set_axis_off()
    _finish(fig, rows[1], tops, caption)

    def show(i: int) -> None:
        shown[0].set_data(_shown(frames[i]))
        shown[1].set_data(_shown(flow_to_rgb(flows[i], scale)))
        frame_ax.set_title(f"frame {sampled[i]}", fontsize=9)
        flow_ax.set_title(f"flow {sampled[i]}\u2192{sampled[i] + 1}", fontsize=9)

    show(0)
    fig.set_dpi(dpi)
    fig.canvas.draw()
    fig.set_layout_engine("none")  # laid out once: the frames do not move it, and redoing it is most of a frame's cost
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write(fig, show, len(frames), path, fps, dpi)
    finally:
        plt.close(fig)
    return len(frames)


def _write(fig: Figure, show: Callable[[int], None], count: int, path: Path, fps: float, dpi: int) -> None:
    if path.suffix.lower() == ".gif":
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, str(path), dpi):
            for i in range(count):
                show(i)
                writer.grab_frame()
        return
    width, height = fig.canvas.get_width_height()
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    out = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    if not out.isOpened():
        raise OSError(f"{path}: OpenCV cannot write this video format here; use a .gif")
    try:
        for i in range(count):
            show(i)
            fig.canvas.draw()
            out.write(cv2.cvtColor(np.asarray(fig.canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR))
    finally:
        out.release()
