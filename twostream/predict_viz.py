"""Pictures of a prediction (``twostream predict --visualise/--video``): what the streams saw, what they said.

A picture has three rows: sampled frames (what the spatial stream sees), their colour-coded forward
flow (what the temporal stream sees: hue = direction, brightness = magnitude, one scale for the whole
video; :func:`twostream.tracking.flowviz.flow_to_rgb`), and a bar chart of the top classes of each
stream and fusion. An animation shows frame and flow side by side over the video, above the same bars.
"""

from collections.abc import Callable, Sequence
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

from twostream.tracking.flowviz import flow_to_rgb  # noqa: E402

Top = list[tuple[str, float]]  # (class, score), best first
COLOURS = {"spatial": "tab:blue", "temporal": "tab:orange", "fusion_average": "tab:green", "fusion_svm": "tab:red"}
PANEL_INCHES = 2.4  # width of one image or chart
BARS_INCHES, TITLE_INCHES = 2.6, 0.6  # height of the row of bar charts, of the title
SHOWN_WIDTH = 480  # images are shrunk to this many pixels wide first: a panel shows no more (and a
                   # 1080p frame would make every drawing of an animation slow)


def _flow_scale(flows: np.ndarray) -> float:
    """The largest displacement shown (pixels): full brightness in every flow image of the video."""
    return max(float(np.hypot(flows[:, 0], flows[:, 1]).max()), 1e-6)


def _bars(ax: Axes, method: str, top: Top) -> None:
    """A horizontal bar chart of ``top``, best at the top; an SVM's scores are margins, not probabilities."""
    names, scores = [c for c, _ in top][::-1], [s for _, s in top][::-1]
    bars = ax.barh(range(len(top)), scores, color=COLOURS.get(method, "tab:grey"))
    ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    ax.set_yticks(range(len(top)), names, fontsize=8)
    ax.set_title(f"{method}\n{top[0][0]}", fontsize=9)
    ax.set_xlabel("SVM margin" if method == "fusion_svm" else "softmax score", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    if method != "fusion_svm":
        ax.set_xlim(0, 1)
    else:
        ax.margins(x=0.3)  # room for the value labels


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


def _figure(columns: int, image_rows: int, aspect: float) -> tuple[Figure, list[SubplotSpec]]:
    """A figure ``columns`` panels wide: ``image_rows`` rows for images of height/width ``aspect`` (one
    image per column), then a row for the bar charts; returns it and its rows."""
    image_height = PANEL_INCHES * aspect
    fig = plt.figure(figsize=(PANEL_INCHES * columns, image_rows * image_height + BARS_INCHES + TITLE_INCHES),
                     layout="constrained")
    return fig, list(fig.add_gridspec(image_rows + 1, 1, height_ratios=[image_height] * image_rows + [BARS_INCHES]))


def _finish(fig: Figure, row: SubplotSpec, tops: dict[str, Top], title: str, scale: float) -> None:
    """The bar charts of every method in ``row``, and the title saying the flow's colour scale."""
    bars = row.subgridspec(1, len(tops))
    for j, (method, top) in enumerate(tops.items()):
        _bars(fig.add_subplot(bars[0, j]), method, top)
    fig.suptitle(f"{title}\nflow: hue = direction, brightness = magnitude (full at {scale:.1f} px)", fontsize=10)


def picture(frames: np.ndarray, flows: np.ndarray, sampled: Sequence[int], tops: dict[str, Top],
            title: str) -> Figure:
    """Frames (k, H, W, 3), their flow (k, 2, H, W) and each method's top classes as one figure:
    k frame axes, k flow axes, one bar-chart axes per method (in that order in ``figure.axes``)."""
    k, columns = len(frames), max(len(frames), len(tops))
    height, width = frames.shape[1:3]
    fig, rows = _figure(columns, 2, columns / k * height / width)
    scale = _flow_scale(flows)
    images, charts = rows[0].subgridspec(1, k), rows[1].subgridspec(1, k)
    for j, t in enumerate(sampled):
        _image(fig.add_subplot(images[0, j]), frames[j], f"frame {t}")
    for j, t in enumerate(sampled):
        _image(fig.add_subplot(charts[0, j]), flow_to_rgb(flows[j], scale), f"flow {t}\u2192{t + 1}")
    _finish(fig, rows[2], tops, title, scale)
    return fig


def save_picture(frames: np.ndarray, flows: np.ndarray, sampled: Sequence[int], tops: dict[str, Top],
                 title: str, path: Path, dpi: int = 100) -> Figure:
    """:func:`picture` written to ``path`` (PNG, or any format matplotlib writes); returns the figure."""
    fig = picture(frames, flows, sampled, tops, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return fig


def save_animation(frames: np.ndarray, flows: np.ndarray, sampled: Sequence[int], tops: dict[str, Top],
                   title: str, path: Path, fps: float, dpi: int = 80) -> int:
    """Frame and flow side by side over the video, the top classes below: a GIF (Pillow, through
    matplotlib) or an MP4/AVI (OpenCV). Returns the number of frames written."""
    height, width = frames.shape[1:3]
    columns = max(2, len(tops))
    fig, rows = _figure(columns, 1, columns / 2 * height / width)
    top_row = rows[0].subgridspec(1, 2)
    scale = _flow_scale(flows)
    frame_ax, flow_ax = fig.add_subplot(top_row[0, 0]), fig.add_subplot(top_row[0, 1])
    shown = [frame_ax.imshow(_shown(frames[0])), flow_ax.imshow(_shown(flow_to_rgb(flows[0], scale)))]
    for ax in (frame_ax, flow_ax):
        ax.set_axis_off()
    _finish(fig, rows[1], tops, title, scale)

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
