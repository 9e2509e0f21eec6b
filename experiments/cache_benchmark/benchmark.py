"""Flow storage layouts side by side (bytes, files, random L-stack reads/s, error against the float flow),
and extraction throughput (serial loop, overlapping threads, worker processes).

For one real clip, this estimates float flow, quantises it to uint8 (+-bound px) and stores the
same quantised fields in each layout: the common JPEG-folder layout (one x and one y JPEG per
field, as denseflow-style tools write them), a plain sharded Zarr v3 array with zstd read through
Zarr, and twostream's cache (``FlowCache``) with lossless zstd or JPEG chunks. Reads are random
stacks of L consecutive fields (both channels) from a warm page cache, one thread; the rounds
interleave the layouts so that a busy machine slows all of them alike, and the table gives the
median round. Extraction runs over copies of the shared clips into fresh caches. Run from the
repository root::

    python experiments/cache_benchmark/benchmark.py            # or: nox -s bench_cache
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from twostream.cache.extract import ExtractSettings, extract_videos, video_flow
from twostream.cache.store import CacheLayout, FlowCache, source_signature
from twostream.data.splits import Video
from twostream.data.video import read_frames
from twostream.flow import dequantize, get_estimator, quantize

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIP = REPO / ".." / "shared" / "data" / "clips" / "mmaction2_test.mp4"
ESTIMATOR_PARAMS = {  # the defaults of conf/flow/<name>.yaml
    "dis": {"preset": "medium", "finest_scale": None},
    "farneback": {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2},
}

Reader = Callable[[int, int], np.ndarray]  # (start, length) -> uint8 (length, 2, H, W)


def folder_bytes_files(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def jpeg_folder(q: np.ndarray, root: Path, quality: int) -> tuple[Path, Reader]:
    """One x and one y JPEG per field, written and read with OpenCV."""
    folder = root / "jpeg_folder"
    folder.mkdir()
    for t, field in enumerate(q):
        for axis, channel in zip("xy", field, strict=True):
            cv2.imwrite(str(folder / f"{axis}_{t:05d}.jpg"), channel, [cv2.IMWRITE_JPEG_QUALITY, quality])

    def read(start: int, length: int) -> np.ndarray:
        return np.stack([np.stack([cv2.imread(str(folder / f"{axis}_{t:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
                                   for axis in "xy"]) for t in range(start, start + length)])

    return folder, read


def plain_zarr(q: np.ndarray, root: Path, level: int) -> tuple[Path, Reader]:
    """A sharded Zarr v3 array (one field per chunk, zstd), read through Zarr's own API."""
    path = root / "plain.zarr"
    array = zarr.create_array(path, shape=q.shape, dtype="uint8", chunks=(1,) + q.shape[1:], shards=q.shape,
                              compressors=ZstdCodec(level=level))
    array[:] = q
    array = zarr.open_array(path, mode="r")
    return path, lambda start, length: array[start:start + length]


def flow_cache(q: np.ndarray, frames: np.ndarray, root: Path, name: str, layout: CacheLayout) -> tuple[Path, Reader]:
    """twostream's cache; only the flow_fwd array is counted."""
    cache = FlowCache(root / f"{name}.zarr", {"bound": float(q.max())}, writable=True, layout=layout)
    cache.write_video("clip", frames, q, source={})
    reader = FlowCache(root / f"{name}.zarr", {"bound": float(q.max())})
    return root / f"{name}.zarr" / "videos" / "clip" / "flow_fwd", lambda s, n: reader.read_flow("clip", s, n, quantized=True)


def reads_per_second(read: Reader, starts: np.ndarray, length: int) -> float:
    begin = time.perf_counter()
    for s in starts:
        read(int(s), length)
    return len(starts) / (time.perf_counter() - begin)


def benchmark(frames: np.ndarray, estimator: str, *, bound: float, length: int, reads: int, rounds: int,
              quality: int, zstd_level: int, work: Path) -> list[dict]:
    start = time.perf_counter()
    flow = get_estimator(estimator, **ESTIMATOR_PARAMS[estimator])(frames[:-1], frames[1:])
    print(f"{estimator}: {len(flow)} fields in {time.perf_counter() - start:.1f} s")
    q = quantize(flow, bound)
    root = work / estimator
    root.mkdir()
    jpeg = {"name": "jpeg", "level": quality}
    zstd = {"name": "zstd", "level": zstd_level}
    layouts = {
        f"JPEG folder (q{quality}, OpenCV)": jpeg_folder(q, root, quality),
        f"Zarr v3, zstd {zstd_level}, sharded (Zarr reads)": plain_zarr(q, root, zstd_level),
        f"twostream cache, zstd {zstd_level}": flow_cache(q, frames, root, "zstd", CacheLayout(zstd, jpeg)),
        f"twostream cache, JPEG q{quality} (default)": flow_cache(q, frames, root, "jpeg", CacheLayout(jpeg, jpeg)),
        f"twostream cache, JPEG q{quality}, 4 fields/chunk": flow_cache(q, frames, root, "jpeg4",
                                                                        CacheLayout(jpeg, jpeg, flows_per_chunk=4)),
    }
    starts = np.random.default_rng(0).integers(0, len(q) - length + 1, reads)
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(rounds):
        for name, (_, read) in layouts.items():
            rates[name].append(reads_per_second(read, starts, length))
    rows = []
    for name, (path, read) in layouts.items():
        size, files = folder_bytes_files(path)
        error = float(np.abs(dequantize(read(0, len(q)), bound) - flow).mean())
        rows.append({"estimator": estimator, "layout": name, "bytes": size, "files": files,
                     "reads_per_s": statistics.median(rates[name]), "mae_px": error})
    base = rows[0]
    for row in rows:
        row["vs_jpeg"] = {"bytes": row["bytes"] / base["bytes"], "reads_per_s": row["reads_per_s"] / base["reads_per_s"],
                          "mae_px": row["mae_px"] / base["mae_px"]}
    return rows


def serial_extract(videos: list[Video], cache: FlowCache, settings: ExtractSettings) -> None:
    """The naive loop the stage replaces: decode, estimate, write (quantised), one video after the other."""
    estimator = get_estimator(settings.estimator, **settings.params)
    for video in videos:
        frames = read_frames(video.path, short_side=settings.short_side)
        flow = video_flow(frames, estimator, settings.batch_size)
        cache.write_video(video.id, frames, flow, source=source_signature(video.path))


def extraction(clips: list[Path], estimator: str, copies: int, workers: int, rounds: int, work: Path) -> list[dict]:
    """pairs/s of the serial loop, the threaded stage (num_workers=0) and ``workers`` processes.

    The modes alternate for ``rounds`` rounds (each into a fresh cache) and the median is kept, so
    that other load on the machine hits every mode alike.
    """
    videos = [Video(f"{clip.name}_{k}", clip, 0, None) for clip in clips for k in range(copies)]
    settings = ExtractSettings(estimator=estimator, params=ESTIMATOR_PARAMS[estimator], batch_size=16, short_side=None)
    layout = CacheLayout({"name": "jpeg", "level": 95}, {"name": "jpeg", "level": 95})
    modes = {"serial loop (decode, flow, write in turn)": lambda c: serial_extract(videos, c, settings),
             "stage, num_workers=0 (threads overlap decode/flow/write)": lambda c: extract_videos(
                 videos, c, settings, num_workers=0, prefetch=2, progress=False),
             f"stage, num_workers={workers} (processes)": lambda c: extract_videos(
                 videos, c, settings, num_workers=workers, progress=False)}
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    pairs = 0
    for r in range(rounds):
        for k, (name, run) in enumerate(modes.items()):
            cache = FlowCache(work / f"extract_{estimator}_{r}_{k}.zarr", {"bound": 20.0}, writable=True,
                              layout=layout)
            begin = time.perf_counter()
            run(cache)
            seconds[name].append(time.perf_counter() - begin)
            assert len(cache.video_ids()) == len(videos), cache.failures()
            pairs = sum(cache.num_flows(v) for v in cache.video_ids())
    rows = [{"estimator": estimator, "mode": name, "videos": len(videos), "pairs": pairs,
             "seconds": statistics.median(t), "pairs_per_s": pairs / statistics.median(t)} for name, t in seconds.items()]
    for row in rows:
        row["vs_serial"] = row["pairs_per_s"] / rows[0]["pairs_per_s"]
    return rows


def extraction_table(rows: list[dict]) -> str:
    lines = ["| flow | mode | videos | pairs | s | pairs/s | vs serial |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['estimator']} | {r['mode']} | {r['videos']} | {r['pairs']} | {r['seconds']:.1f} | "
              f"{r['pairs_per_s']:.0f} | {r['vs_serial']:.2f} |" for r in rows]
    return "\n".join(lines)


def table(rows: list[dict], length: int) -> str:
    lines = [f"| flow | layout | MB on disk | files | random {length}-stacks/s | MAE vs float flow (px) "
             "| bytes / JPEG | reads / JPEG | error / JPEG |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        v = r["vs_jpeg"]
        lines.append(f"| {r['estimator']} | {r['layout']} | {r['bytes'] / 1e6:.2f} | {r['files']} | "
                     f"{r['reads_per_s']:.0f} | {r['mae_px']:.4f} | {v['bytes']:.2f} | {v['reads_per_s']:.2f} | "
                     f"{v['mae_px']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--estimators", nargs="+", default=["dis", "farneback"], choices=sorted(ESTIMATOR_PARAMS))
    parser.add_argument("--bound", type=float, default=20.0)
    parser.add_argument("--length", type=int, default=10, help="L: fields per random stack")
    parser.add_argument("--reads", type=int, default=100, help="random stacks per layout and round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of both JPEG layouts")
    parser.add_argument("--zstd-level", type=int, default=3)
    parser.add_argument("--extract-estimators", nargs="*", default=["dis"], choices=sorted(ESTIMATOR_PARAMS),
                        help="estimators of the extraction comparison (none: skip it)")
    parser.add_argument("--extract-copies", type=int, default=1, help="copies of each shared clip to extract")
    parser.add_argument("--extract-workers", type=int, default=os.cpu_count())
    parser.add_argument("--extract-rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "cache_benchmark" / "results.json")
    args = parser.parse_args()
    if not args.clip.is_file():
        print(f"skipped: the clip {args.clip} is not here (it ships beside the repository in ../shared/data)")
        return
    frames = read_frames(args.clip)
    print(f"{args.clip.name}: {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}; "
          f"{os.cpu_count()} CPUs; one reader thread; load average {os.getloadavg()[0]:.1f}")
    work = Path(tempfile.mkdtemp(prefix="cache_benchmark_"))
    try:
        rows = [row for name in args.estimators
                for row in benchmark(frames, name, bound=args.bound, length=args.length, reads=args.reads,
                                     rounds=args.rounds, quality=args.quality, zstd_level=args.zstd_level, work=work)]
        print(table(rows, args.length))
        clips = sorted(args.clip.parent.glob("*.mp4")) + sorted(args.clip.parent.glob("*.avi"))
        extract_rows = [row for name in args.extract_estimators
                        for row in extraction(clips, name, args.extract_copies, args.extract_workers,
                                              args.extract_rounds, work)]
        if extract_rows:
            print(extraction_table(extract_rows))
    finally:
        shutil.rmtree(work)
    print(f"load average {os.getloadavg()[0]:.1f} (other processes on the machine skew the timings)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"layouts": rows, "extraction": extract_rows}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
