"""Which RGB frames the cache should keep: bytes, loader speed and spatial accuracy per ``cache.frames``.

For each choice of ``cache.frames`` (every frame, every 4th, the test protocol's positions with 0 or
6 training frames) this extracts the quickstart's synthetic set into its own cache, then trains and
tests the spatial stream alone with the quickstart's settings for each seed, and finally measures
the frames' bytes per video and the training loader's samples/s, side by side in one process.

    OMP_NUM_THREADS=1 python experiments/cache_frames/run.py --seeds 0 1 2
    python experiments/cache_frames/run.py --summarize      # then the table from what the runs wrote

Every run writes under ``outputs/cache_frames_<choice>_s<seed>`` and its cache under
``data/cache/cache_frames_<choice>.zarr``; a run whose score files exist is not run again, and
several drivers started at once share the runs (each claims one with ``<run>.claimed``).
"""

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from twostream.rundir import RunDir

CHOICES = {  # name -> cache.frames overrides; the first two are the comparison the default rests on
    "all": ["cache.frames.keep=all"],
    "protocol0": ["cache.frames.keep=protocol", "cache.frames.train_frames=0"],
    "every4": ["cache.frames.keep=every", "cache.frames.every=4"],
    "protocol6": ["cache.frames.keep=protocol", "cache.frames.train_frames=6"],
}
# The quickstart's spatial stream, 10 epochs instead of 30 (13 min per run on the loaded 2-core machine
# at 30): the choices are compared with each other, not with the quickstart's figures.
COMMON = ["+experiment=quickstart", "~stream@streams.temporal", "streams.spatial.epochs=10", "progress=false",
          "tracking.mode=disabled"]
T_95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57}  # Student's t, two-sided 95 %, by degrees of freedom


def overrides(choice: str, seed: int | None = None) -> list[str]:
    out = [*COMMON, *CHOICES[choice], f"cache.path=data/cache/cache_frames_{choice}.zarr"]
    if seed is not None:
        out += [f"seed={seed}", f"name=cache_frames_{choice}_s{seed}"]
    return out


def twostream(args: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        subprocess.run([sys.executable, "-m", "twostream", *args], check=True, stdout=out, stderr=subprocess.STDOUT)


def run(seeds: list[int]) -> None:
    for choice in CHOICES:
        if not Path(f"data/cache/cache_frames_{choice}.zarr").exists():
            start = time.perf_counter()
            twostream([*overrides(choice), "stage=extract", f"name=cache_frames_{choice}_extract"],
                      Path(f"outputs/cache_frames_{choice}_extract.log"))
            print(f"{choice}: extracted in {time.perf_counter() - start:.0f} s", flush=True)
    # the first two choices at every seed first, then the others: an interrupted study still has the
    # comparison the default rests on
    order = [(c, s) for c in list(CHOICES)[:2] for s in seeds] + [(c, s) for c in list(CHOICES)[2:] for s in seeds]
    for choice, seed in order:
        folder = Path(f"outputs/cache_frames_{choice}_s{seed}")
        claimed = folder.with_suffix(".claimed")  # several drivers may share the runs
        if RunDir(folder).scores("spatial", "test").exists() or claimed.exists():
            continue
        claimed.touch()
        start = time.perf_counter()
        for stage in ("train", "test"):
            twostream([*overrides(choice, seed), f"stage={stage}"], folder.with_suffix(".log"))
        print(f"{choice} seed {seed}: trained and tested in {time.perf_counter() - start:.0f} s", flush=True)


def frames_bytes(cache: Path) -> tuple[float, float, float]:
    """(frame bytes per video, flow bytes per video, mean fraction of frames stored) of a cache."""
    frames = flow = 0
    fractions = []
    for attrs_file in (cache / "videos").rglob("zarr.json"):
        meta = json.loads(attrs_file.read_text())
        attrs = meta.get("attributes", {})
        if attrs.get("status") != "complete":
            continue
        video = attrs_file.parent
        frames += sum(f.stat().st_size for f in (video / "frames").rglob("*") if f.is_file())
        flow += sum(f.stat().st_size for f in (video / "flow_fwd").rglob("*") if f.is_file())
        fractions.append(len(attrs["frame_indices"]) / attrs["num_frames"])
    n = len(fractions)
    return frames / n, flow / n, float(np.mean(fractions))


def loader(choice: str):
    """The spatial stream's training dataset on a choice's cache, read from disk (not in memory)."""
    import torch

    from twostream.cache.store import FlowCache
    from twostream.data.splits import Video
    from twostream.inputs.datasets import FrameSource, RandomPositions

    cache = FlowCache.open(f"data/cache/cache_frames_{choice}.zarr")
    videos = [Video(v, Path(v), 0, None) for v in cache.video_ids()]
    dataset = RandomPositions(FrameSource(cache), videos, crop_size=56, samples_per_video=1000)
    torch.manual_seed(0)
    for i in range(len(videos)):  # open every video's arrays once, as an epoch does
        dataset[i]
    return dataset


def loader_speeds(choices: list[str], rounds: int = 5, seconds: float = 4.0) -> dict[str, float]:
    """Samples/s of each choice's training loader: the median of ``rounds`` interleaved rounds, so
    that a change in the machine's load touches every choice alike."""
    datasets = {c: loader(c) for c in choices}
    rates: dict[str, list[float]] = {c: [] for c in choices}
    for _ in range(rounds):
        for choice, dataset in datasets.items():
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                dataset[count % len(dataset)]
                count += 1
            rates[choice].append(count / (time.perf_counter() - start))
    return {c: statistics.median(r) for c, r in rates.items()}


def accuracy(folder: Path, subset: str) -> float | None:
    path = RunDir(folder).scores("spatial", subset)
    if not path.exists():
        return None
    with np.load(path) as scores:
        return float((scores["scores"].argmax(1) == scores["labels"]).mean())


def train_rate(folder: Path) -> float | None:
    rates = [float(r) for r in re.findall(r"([\d.]+) samples/s", folder.with_suffix(".log").read_text())] \
        if folder.with_suffix(".log").exists() else []
    return statistics.mean(rates) if rates else None


def interval(values: list[float]) -> str:
    if len(values) < 2:
        return f"{100 * values[0]:.1f} (1 seed)" if values else "-"
    sd = statistics.stdev(values)
    return f"{100 * statistics.mean(values):.1f} ± {100 * T_95[len(values) - 1] * sd / math.sqrt(len(values)):.1f}"


def summarize(seeds: list[int]) -> None:
    measured = [c for c in CHOICES if Path(f"data/cache/cache_frames_{c}.zarr").exists()]
    speeds = loader_speeds(measured)  # side by side, one process
    print("| cache.frames | frames kept | frame KB/video | flow KB/video | loader samples/s (x all) | "
          "training samples/s | validation accuracy % | test accuracy % |")
    print("|---|---|---|---|---|---|---|---|")
    for choice in measured:
        frame_b, flow_b, fraction = frames_bytes(Path(f"data/cache/cache_frames_{choice}.zarr"))
        folders = [Path(f"outputs/cache_frames_{choice}_s{s}") for s in seeds]
        val = [a for f in folders if (a := accuracy(f, "val")) is not None]
        test = [a for f in folders if (a := accuracy(f, "test")) is not None]
        rates = [r for f in folders if (r := train_rate(f)) is not None]
        print(f"| {choice} | {fraction:.3f} | {frame_b / 1e3:.1f} | {flow_b / 1e3:.1f} | {speeds[choice]:.0f} "
              f"({speeds[choice] / speeds['all']:.2f}) | {statistics.mean(rates) if rates else float('nan'):.0f} | "
              f"{interval(val)} | {interval(test)} |")
        print(f"<!-- {choice}: val {[round(a, 3) for a in val]} test {[round(a, 3) for a in test]} -->")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--summarize", action="store_true", help="print the table from the runs' files")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.seeds)
    else:
        run(args.seeds)


if __name__ == "__main__":
    main()
