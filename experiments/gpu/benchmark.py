"""One GPU at full speed (issue 11): the prepared check, one command, one Markdown table.

Measures, on one device:

- **tvl1**: pairs/s at 340x256 and 455x256 by batch size (``auto``: what ``flow.batch_size: auto``
  picks), after a warm-up call that compiles the kernels; peak GPU memory; and on a few of the same
  pairs the end-point error (EPE) of the device's flow against the CPU's, and of each against the
  known motion the pairs were made with.
- **extraction**: the extract stage's pairs/s (decode, flow, quantise, JPEG, write, overlapping)
  against the estimator alone on the same, already decoded, frames.
- **training**: train steps/s of the spatial and temporal CNN-M-2048 at 224 in fp32 and bf16
  (autocast), on in-memory input already on the device, and with the real loader (a JPEG flow cache
  read by DataLoader workers), whose ratio to in-memory says whether the loader keeps up.
- **bf16 trains**: a small learnable task trained in fp32 and in bf16 autocast; the loss must fall in both.

Only torch, torchvision, numpy, PyYAML and OpenCV (``opencv-python-headless``) are needed for the
tvl1 and in-memory rows; the extraction and real-loader rows also need the cache's packages (zarr,
numcodecs, imagecodecs, google-crc32c, donfig, omegaconf), and say ``skipped: needs ...`` without
them. experiments/gpu/README.md has the command for a GPU machine, wheels included. With
``--device cpu --tiny`` everything runs on small inputs in seconds (tests/test_gpu_benchmark.py)::

    python experiments/gpu/benchmark.py --out experiments/gpu/table.md     # or: nox -s gpu
    python experiments/gpu/benchmark.py --device cpu --tiny
"""

import twostream  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import argparse
import contextlib
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import torch
import yaml

from twostream.flow import batch_pairs, get_estimator
from twostream.flow.groundtruth import endpoint_error, smooth_random_flow, warp_to_prev
from twostream.models import build_model

REPO = Path(__file__).resolve().parents[2]
CACHE_PACKAGES = ("zarr", "numcodecs", "imagecodecs", "google_crc32c", "donfig", "omegaconf")
COLUMNS = ("part", "setting", "value", "unit", "compared with", "ratio", "peak GPU GiB")


@dataclass(frozen=True)
class Scale:
    """How big the run is: the full check on a GPU, or the tiny one the test suite runs."""

    sizes: tuple[tuple[int, int], ...]  # (width, height) of the tvl1 pairs
    batches: tuple[int | str, ...]      # tvl1 batch sizes; "auto" = flow.batch_size: auto
    pairs: int                          # pairs per timed tvl1 call set (a multiple of every batch)
    epe_pairs: int                      # pairs also solved on the CPU for the EPE rows
    tvl1: dict[str, Any]                # overrides of conf/flow/tvl1.yaml's params and runtime
    model: str                          # conf/model/<model>.yaml
    crop: int                           # network input size
    frame: tuple[int, int]              # (width, height) of cached frames and extracted videos
    videos: int                         # videos in the cache and in the extraction rows
    frames_per_video: int
    train_batch: int
    train_steps: int
    loader_workers: int


FULL = Scale(sizes=((340, 256), (455, 256)), batches=(32, 128, "auto"), pairs=256, epe_pairs=4, tvl1={},
             model="cnn_m_2048", crop=224, frame=(340, 256), videos=8, frames_per_video=60, train_batch=128,
             train_steps=20, loader_workers=12)
TINY = Scale(sizes=((64, 48), (80, 48)), batches=(2, "auto"), pairs=4, epe_pairs=2,
             tvl1={"scales": 2, "warps": 1, "iterations": 10, "compile": False}, model="cnn_m_tiny", crop=48,
             frame=(64, 56),
             videos=2, frames_per_video=12, train_batch=4, train_steps=2, loader_workers=0)


def missing(packages: tuple[str, ...]) -> list[str]:
    """The packages of ``packages`` that do not import here."""
    absent = []
    for name in packages:
        try:
            __import__(name)
        except ImportError:
            absent.append(name)
    return absent


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, float]) -> Iterator[None]:
    """Record the peak GPU memory (GiB) allocated inside the block in ``out["gib"]`` (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        out["gib"] = torch.cuda.max_memory_allocated(device) / 2**30


def timed(fn: Callable[[], Any], device: torch.device, rounds: int = 3) -> float:
    """Median wall-clock seconds of ``fn`` over ``rounds`` calls, the device drained after each."""
    seconds = []
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def row(part: str, setting: str, value: float | str, unit: str, compared: str = "", ratio: float | None = None,
        gib: float | None = None) -> dict[str, str]:
    """One table row; numbers formatted with enough digits to compare."""
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"
    return dict(zip(COLUMNS, (part, setting, value if isinstance(value, str) else fmt(value), unit, compared,
                              fmt(ratio), fmt(gib)), strict=True))


def skipped(part: str, setting: str, absent: list[str]) -> dict[str, str]:
    return row(part, setting, "skipped", "", f"needs {', '.join(absent)} (experiments/gpu/README.md)")


# ---------------------------------------------------------------- tvl1


def tvl1_config(device: torch.device, scale: Scale) -> dict[str, Any]:
    """conf/flow/tvl1.yaml's params and runtime (read as YAML: no Hydra needed), for ``device``."""
    flow = yaml.safe_load((REPO / "conf" / "flow" / "tvl1.yaml").read_text())
    return {**flow["params"], **flow["runtime"], **scale.tvl1, "device": str(device)}


def textured(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A grey uint8 image with texture at several scales (what TV-L1 needs to see motion)."""
    noise = sum(cv2.resize(rng.random((height // s + 1, width // s + 1)).astype(np.float32), (width, height),
                           interpolation=cv2.INTER_CUBIC) / s for s in (1, 4, 16))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (cv2.GaussianBlur(noise, (0, 0), 1.0) * 255).astype(np.uint8)


def known_motion_pairs(rng: np.random.Generator, count: int, width: int, height: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``count`` (prev, nxt) grey pairs with smooth random motion up to 6 px; the flow and where it is valid."""
    prev, nxt, flows, valid = [], [], [], []
    for _ in range(count):
        image, flow = textured(rng, height, width), smooth_random_flow(rng, height, width, 6.0)
        warped, inside = warp_to_prev(image, flow)
        prev.append(warped)
        nxt.append(image)
        flows.append(flow)
        valid.append(inside)
    return np.stack(prev), np.stack(nxt), np.stack(flows), np.stack(valid)


def tvl1_rows(device: torch.device, scale: Scale, rng: np.random.Generator) -> list[dict[str, str]]:
    """pairs/s by frame size and batch size; EPE of the device's flow against the CPU's and the truth."""
    estimator = get_estimator("tvl1", **tvl1_config(device, scale))
    rows = []
    for width, height in scale.sizes:
        prev, nxt, truth, valid = known_motion_pairs(rng, scale.pairs, width, height)
        size = f"{width}x{height}"
        for batch in scale.batches:
            pairs = batch_pairs(estimator, batch, height, width)
            calls = range(0, max(pairs, scale.pairs), pairs)
            repeat = max(1, -(-pairs // scale.pairs))  # "auto" may want more pairs than made: tile them

            first, second = np.tile(prev, (repeat, 1, 1)), np.tile(nxt, (repeat, 1, 1))

            def run(pairs: int = pairs, calls: range = calls, first: np.ndarray = first,
                    second: np.ndarray = second) -> None:
                for i in calls:
                    estimator(first[i:i + pairs], second[i:i + pairs])

            start = time.perf_counter()
            estimator(prev[:min(pairs, scale.pairs)], nxt[:min(pairs, scale.pairs)])  # compiles this size
            warm_up = time.perf_counter() - start
            memory: dict[str, float] = {}
            with peak_memory(device, memory):
                seconds = timed(run, device)
            label = f"batch {batch}" + (f" = {pairs}" if batch == "auto" else "")
            rows.append(row("tvl1 pairs/s", f"{size}, {label}", len(calls) * pairs / seconds, "pairs/s",
                            f"warm-up {warm_up:.1f} s", gib=memory.get("gib")))
        k = scale.epe_pairs
        on_device = estimator(prev[:k], nxt[:k])
        on_cpu = get_estimator("tvl1", **tvl1_config(torch.device("cpu"), scale))(prev[:k], nxt[:k])
        device_epe = endpoint_error(on_device, truth[:k], valid[:k])
        cpu_epe = endpoint_error(on_cpu, truth[:k], valid[:k])
        rows.append(row("tvl1 EPE vs CPU flow", f"{size}, {k} pairs", endpoint_error(on_device, on_cpu), "px"))
        rows.append(row(f"tvl1 EPE vs truth on {device.type}", f"{size}, {k} pairs", device_epe, "px",
                        f"CPU: {cpu_epe:.4g} px", device_epe / cpu_epe))
    return rows


# ---------------------------------------------------------------- extraction and the real loader


def write_videos(folder: Path, scale: Scale, rng: np.random.Generator) -> list[Path]:
    """MJPEG .avi files of a texture drifting by a few pixels a frame (OpenCV's own encoder)."""
    width, height = scale.frame
    paths = []
    for v in range(scale.videos):
        big = cv2.cvtColor(textured(rng, height + 4 * scale.frames_per_video, width + 4 * scale.frames_per_video),
                           cv2.COLOR_GRAY2BGR)
        path = folder / f"video_{v}.avi"
        writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25,
                                 (width, height))
        for t in range(scale.frames_per_video):
            writer.write(np.ascontiguousarray(big[2 * t:2 * t + height, 3 * t:3 * t + width]))
        writer.release()
        paths.append(path)
    return paths


def extraction_rows(device: torch.device, scale: Scale, work: Path, rng: np.random.Generator
                    ) -> tuple[list[dict[str, str]], Path | None]:
    """The stage's pairs/s against the estimator alone; returns the cache it wrote (for the loader rows)."""
    absent = missing(CACHE_PACKAGES)
    if absent:
        return [skipped("extraction pairs/s", "stage vs estimator alone", absent)], None
    from twostream.cache.extract import ExtractSettings, extract_videos, video_flow
    from twostream.cache.store import CacheLayout, FlowCache
    from twostream.data.splits import Video
    from twostream.data.video import read_frames

    paths = write_videos(work, scale, rng)
    videos = [Video(p.stem, p, 0, None) for p in paths]
    config = tvl1_config(device, scale)
    settings = ExtractSettings(estimator="tvl1", params=config, batch_size="auto", short_side=None)
    estimator = get_estimator("tvl1", **config)
    decoded = [read_frames(p) for p in paths]
    video_flow(decoded[0], estimator, "auto")  # compiles the kernels for this size
    alone = timed(lambda: [video_flow(f, estimator, "auto") for f in decoded], device, rounds=1)
    layout = CacheLayout({"name": "jpeg", "level": 95}, {"name": "jpeg", "level": 95})
    cache = FlowCache(work / "cache.zarr", {"bound": 20.0}, writable=True, layout=layout)
    memory: dict[str, float] = {}
    with peak_memory(device, memory):
        summary = extract_videos(videos, cache, settings, num_workers=0, prefetch=2, progress=False)
    pairs = sum(len(f) - 1 for f in decoded)
    stage_rate, alone_rate = summary.pairs / summary.seconds, pairs / alone
    width, height = scale.frame
    return [row("extraction pairs/s", f"stage, {len(videos)} videos of {scale.frames_per_video} frames "
                f"{width}x{height}, JPEG q95", stage_rate, "pairs/s", f"estimator alone: {alone_rate:.4g} pairs/s",
                stage_rate / alone_rate, memory.get("gib"))], cache.path


def bf16_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16)


def model_config(scale: Scale) -> SimpleNamespace:
    return SimpleNamespace(**yaml.safe_load((REPO / "conf" / "model" / f"{scale.model}.yaml").read_text()))


def train_rows(device: torch.device, scale: Scale, cache_path: Path | None) -> list[dict[str, str]]:
    """Train samples/s, spatial and temporal, fp32 and bf16, in-memory input and (with a cache) the real loader."""
    absent = missing(CACHE_PACKAGES)  # train_step's module imports the cache's readers
    if absent:
        return [skipped("train samples/s", "spatial and temporal, fp32 and bf16", absent)]
    from torch.utils.data import DataLoader

    from twostream.cache.store import FlowCache
    from twostream.data.splits import Video
    from twostream.inputs.datasets import FlowStackSource, FrameSource, RandomPositions
    from twostream.train.loop import make_optimizer, train_step

    fmt = torch.channels_last if device.type == "cuda" else torch.preserve_format
    train_cfg = SimpleNamespace(momentum=0.9, weight_decay=5e-4, lr_decay_at=[0.5], lr_gamma=0.1)
    cache = FlowCache.open(cache_path) if cache_path is not None else None
    rows = []
    for stream, channels in (("spatial", 3), ("temporal", 20)):
        source = None
        if cache is not None:
            source = FrameSource(cache) if channels == 3 else FlowStackSource(cache, 10, "optical_flow", False, False)
            videos = [Video(v, Path(v), k % 2, None) for k, v in enumerate(cache.video_ids())]
            data = RandomPositions(source, videos, scale.crop, scale.train_batch * scale.train_steps // len(videos) + 1)
        for precision in ("fp32", "bf16"):
            model = build_model(model_config(scale), in_channels=channels, classes_per_task=[101],
                                input_size=scale.crop, dropout=0.5, is_flow=channels > 3).to(device, memory_format=fmt)
            optimizer, _ = make_optimizer(model, train_cfg, 0.01, 1)
            autocast = bf16_autocast(device) if precision == "bf16" else contextlib.nullcontext()

            def steps(batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], model=model,
                      optimizer=optimizer, autocast=autocast) -> int:
                seen = 0
                for x, y, task in batches:
                    batch = (x.to(device, non_blocking=True, memory_format=fmt), y.to(device), task.to(device))
                    train_step(model, batch, optimizer, accumulate=1, step_now=True, autocast=autocast, scaler=None)
                    seen += len(y)
                return seen

            x = torch.randn(scale.train_batch, channels, scale.crop, scale.crop, device=device).to(memory_format=fmt)
            y = torch.randint(0, 101, (scale.train_batch,), device=device)
            in_memory = [(x, y, torch.zeros_like(y))] * scale.train_steps
            steps(iter(in_memory[:1]))  # warm-up: cuDNN picks its algorithms
            memory: dict[str, float] = {}
            with peak_memory(device, memory):
                seconds = timed(lambda in_memory=in_memory, steps=steps: steps(iter(in_memory)), device, rounds=1)
            memory_rate = scale.train_batch * scale.train_steps / seconds
            setting = f"{stream}, {scale.model} at {scale.crop}, batch {scale.train_batch}, {precision}"
            rows.append(row("train samples/s", f"{setting}, in-memory input", memory_rate, "samples/s",
                            gib=memory.get("gib")))
            if source is None:
                rows.append(skipped("train samples/s", f"{setting}, real loader", ["a cache (extraction rows)"]))
                continue
            loader = DataLoader(data, batch_size=scale.train_batch, shuffle=True, drop_last=True,
                                num_workers=scale.loader_workers, pin_memory=device.type == "cuda",
                                persistent_workers=scale.loader_workers > 0)
            steps(iter([next(iter(loader))]))  # starts the workers
            start = time.perf_counter()
            seen = steps(iter(loader))
            synchronize(device)
            loader_rate = seen / (time.perf_counter() - start)
            rows.append(row("train samples/s", f"{setting}, real loader ({scale.loader_workers} workers)",
                            loader_rate, "samples/s", "in-memory input", loader_rate / memory_rate))
    return rows


def bf16_learns_rows(device: torch.device, scale: Scale) -> list[dict[str, str]]:
    """A learnable task (the class is which quarter of the input is brightest), trained fp32 and bf16:
    final loss against the first, and accuracy."""
    absent = missing(CACHE_PACKAGES)
    if absent:
        return [skipped("bf16 trains", "loss falls like fp32", absent)]
    from twostream.train.loop import make_optimizer, train_step

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, scale.crop, scale.crop, generator=generator)
    y = torch.randint(0, 4, (64,), generator=generator)
    half = scale.crop // 2
    for k, label in enumerate(y.tolist()):  # brighten the labelled quarter
        x[k, :, (label // 2) * half:(label // 2 + 1) * half, (label % 2) * half:(label % 2 + 1) * half] += 3.0
    x, y = x.to(device), y.to(device)
    train_cfg = SimpleNamespace(momentum=0.9, weight_decay=0.0, lr_decay_at=[1.0], lr_gamma=0.1)
    rows = []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model(model_config(TINY), in_channels=3, classes_per_task=[4], input_size=scale.crop,
                            dropout=0.0, is_flow=False).to(device)
        optimizer, _ = make_optimizer(model, train_cfg, 0.05, 1)  # 0.1 diverged in fp32 and bf16 alike
        autocast = bf16_autocast(device) if precision == "bf16" else contextlib.nullcontext()
        losses = []
        for _ in range(30):
            loss, correct = train_step(model, (x, y, torch.zeros_like(y)), optimizer, accumulate=1, step_now=True,
                                       autocast=autocast, scaler=None)
            losses.append(loss)
        rows.append(row("bf16 trains: final / first loss", f"{precision}, 30 steps on 64 samples, accuracy "
                        f"{correct / len(y):.2f}", losses[-1], "", f"first loss {losses[0]:.4g}", losses[-1] / losses[0]))
    return rows


# ---------------------------------------------------------------- the table


def describe(device: torch.device) -> str:
    """The machine a table was measured on: GPU, driver, torch, CUDA."""
    parts = [f"torch {torch.__version__}", f"Python {platform.python_version()}", f"OpenCV {cv2.__version__}"]
    if device.type == "cuda":
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, check=False).stdout.strip() or "unknown"
        parts = [torch.cuda.get_device_name(device), f"driver {driver}", f"CUDA {torch.version.cuda}", *parts]
    else:
        parts = [f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)", *parts]
    return ", ".join(parts)


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="small inputs: the whole check in seconds")
    parser.add_argument("--out", type=Path, help="also write the table (with its heading) to this file")
    parser.add_argument("--skip", nargs="*", default=[], choices=["tvl1", "extraction", "train", "bf16"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch {torch.__version__} sees no CUDA GPU; use --device cpu")
    scale = TINY if args.tiny else FULL
    absent = missing(CACHE_PACKAGES)
    if absent:
        print(f"without {', '.join(absent)} the extraction and training rows are skipped "
              "(experiments/gpu/README.md says how to bring them)", flush=True)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_benchmark_") as work:
        if "tvl1" not in args.skip:
            rows += tvl1_rows(device, scale, rng)
            print(markdown(rows), flush=True)
        cache_path = None
        if "extraction" not in args.skip:
            extraction, cache_path = extraction_rows(device, scale, Path(work), rng)
            rows += extraction
        if "train" not in args.skip:
            rows += train_rows(device, scale, cache_path)
        if "bf16" not in args.skip:
            rows += bf16_learns_rows(device, scale)
    heading = (f"`python experiments/gpu/benchmark.py --device {args.device}{' --tiny' if args.tiny else ''}` "
               f"on {describe(device)}; {time.perf_counter() - start:.0f} s, {time.strftime('%Y-%m-%d')}")
    table = heading + "\n\n" + markdown(rows) + "\n"
    print("\n" + table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return table


if __name__ == "__main__":
    main()
