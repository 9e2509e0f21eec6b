"""Temporal-stream data loading: stacks/s from the Zarr cache vs the same stacks from JPEG folders.

The full training input path is timed: ``RandomPositions`` (a random L-stack per draw, random
224 crop and flip) over the cache's ``FlowStackSource`` against the same dataset over a
JPEG-folder source (one x and one y JPEG per field, quality 95, as denseflow-style tools write
them), through a torch DataLoader with 0 and 2 worker processes. Both hold the same quantised
DIS flow of copies of one real 340x256 clip. Rounds interleave the two layouts so a busy machine
slows both alike; the table gives the median round. Run from the repository root::

    python experiments/loader_benchmark/benchmark.py
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from twostream.cache.store import CacheLayout, FlowCache
from twostream.data.splits import Video
from twostream.data.video import read_frames
from twostream.flow import dequantize, get_estimator, quantize
from twostream.inputs.datasets import FlowStackSource, RandomPositions
from twostream.inputs.stacking import stack_flow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cache_benchmark"))
from benchmark import DEFAULT_CLIP, ESTIMATOR_PARAMS, jpeg_folder  # noqa: E402  (the JPEG-folder layout)

BOUND = 20.0
JPEG_Q95 = {"name": "jpeg", "level": 95}


class JpegFolderSource:
    """The temporal input read from one JPEG folder per video (the common layout)."""

    is_flow = True

    def __init__(self, readers: dict, num_fields: int, L: int) -> None:
        self.readers, self.num_fields, self.L, self.in_channels = readers, num_fields, L, 2 * L

    def num_positions(self, video_id: str) -> int:
        return self.num_fields - self.L + 1

    def load(self, video_id: str, position: int) -> np.ndarray:
        fields = dequantize(self.readers[video_id](position, self.L), BOUND)
        return stack_flow(fields, 0, self.L, "optical_flow", mean_subtraction=True)


def stacks_per_second(data: RandomPositions, workers: int, batches: int) -> float:
    loader = DataLoader(data, batch_size=32, shuffle=True, num_workers=workers)
    it = iter(loader)
    next(it)  # start-up (worker processes) is not what we measure
    begin = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * 32 / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--videos", type=int, default=8, help="copies of the clip (as separate videos)")
    parser.add_argument("--L", type=int, default=10)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not args.clip.is_file():
        sys.exit(f"{args.clip} not found: this benchmark needs ../shared/data/clips beside the repository")
    frames = read_frames(args.clip)
    q = quantize(get_estimator("dis", **ESTIMATOR_PARAMS["dis"])(frames[:-1], frames[1:]), BOUND)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = FlowCache(work / "c.zarr", {"bound": BOUND}, writable=True,
                          layout=CacheLayout(JPEG_Q95, JPEG_Q95, flows_per_chunk=1, frames_per_chunk=1))
        readers = {}
        for k in range(args.videos):
            cache.write_video(f"v{k}", frames, q, source={})
            (work / f"v{k}").mkdir()
            readers[f"v{k}"] = jpeg_folder(q, work / f"v{k}", 95)[1]
        videos = [Video(f"v{k}", work / f"v{k}.avi", 0, None) for k in range(args.videos)]
        sources = {
            "twostream cache (JPEG q95 chunks)": FlowStackSource(FlowCache(work / "c.zarr", {"bound": BOUND}),
                                                                 args.L, "optical_flow", False, True),
            "JPEG folders (q95)": JpegFolderSource(readers, len(q), args.L),
        }
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for workers in (0, 2):
                for name, source in sources.items():
                    data = RandomPositions(source, videos, 224, samples_per_video=64)
                    results.setdefault((name, workers), []).append(stacks_per_second(data, workers, args.batches))
    print(f"L={args.L} stacks (2L={2 * args.L} channels, 224 crops, mean subtraction), batch 32, "
          f"{args.videos} videos x {len(q)} fields, median of {args.rounds} rounds\n")
    print("| layout | DataLoader workers | stacks/s | vs JPEG folders |\n|---|---:|---:|---:|")
    for workers in (0, 2):
        base = statistics.median(results["JPEG folders (q95)", workers])
        for name in sources:
            value = statistics.median(results[name, workers])
            print(f"| {name} | {workers} | {value:.0f} | {value / base:.2f} |")


if __name__ == "__main__":
    main()
