"""tvl1 on a folder of clips of many frame sizes: compile seconds, total seconds, compile share, and
the flow's end-point difference from today's, per size, every way side by side in one run.

A folder of users' clips resized to short side 256 has as many frame sizes as aspect ratios. The
clips here are real (../shared/data/clips, cycled) resized to ``--sizes`` (default: 10 sizes at short
side 256, landscape and portrait). Each way of compiling runs in a fresh process with its own
on-disk compile cache (``TORCHINDUCTOR_CACHE_DIR``), over the same clips in the same order,
extracting them with the extraction stage's own ``video_flow``:

* ``static``: today's way before issue 22 (``flow.runtime.dynamic_shapes=false``): kernels
  specialised to each pyramid level of each frame size, so every new size compiles again;
* ``static-warm``: the same, in a second process reusing ``static``'s on-disk cache (what torch's
  persistent FX/AOT caches buy when the sizes were seen before);
* ``buckets``: static kernels, frames padded (replicating the border) up to a size bucket (each side
  rounded up to a multiple of ``--bucket``), the flow cropped back: fewer sizes, other flow;
* ``dynamic``: the default now (``flow.runtime.dynamic_shapes=true``): kernels compiled once for
  symbolic batch, height and width, serving every level of every size;
* ``dynamic-warm``: the same in a second process reusing ``dynamic``'s on-disk cache.

Compile seconds are torch's own count (dynamo's ``_compile.compile_inner``: tracing and inductor,
C++ compiler included); total seconds are the wall clock of extracting the clips. The flow of every
way is compared with ``static``'s at each size: mean end-point difference over all pixels and pairs,
and the worst pixel. Run from the repository root::

    python experiments/tvl1_sizes/benchmark.py            # or: nox -s bench_tvl1_sizes
"""

import twostream  # noqa: F401  (first, as in `python -m twostream`: it sets OpenMP's wait policy before torch loads)

# isort: split
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIPS = REPO / ".." / "shared" / "data" / "clips"
# (width, height) at short side 256: UCF-101's 340x256, 4:3, 16:9, 9:16 (portrait phone), 1:1, 3:2, 5:4, 3:4,
# 2:1, 2.39:1 (cinema)
DEFAULT_SIZES = ["340x256", "341x256", "455x256", "256x455", "256x256", "384x256", "320x256", "256x341",
                 "512x256", "612x256"]
WAYS = {  # way -> (Hydra overrides, pad to buckets, reuse the on-disk cache of)
    "static": (["flow.runtime.dynamic_shapes=false"], False, None),
    "static-warm": (["flow.runtime.dynamic_shapes=false"], False, "static"),
    "buckets": (["flow.runtime.dynamic_shapes=false"], True, None),
    "dynamic": (["flow.runtime.dynamic_shapes=true"], False, None),
    "dynamic-warm": (["flow.runtime.dynamic_shapes=true"], False, "dynamic"),
}
REFERENCE = "static"


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 455x256") from None
    if min(width, height) < 16:
        raise argparse.ArgumentTypeError(f"size {text!r}: both sides must be >= 16 px")
    return width, height


def make_clips(clips_dir: Path, sizes: list[tuple[int, int]], pairs: int) -> list[np.ndarray]:
    """One clip per size: ``pairs + 1`` consecutive frames of a real clip (cycling through the folder),
    resized to the size (area-averaged), uint8 (T, H, W, 3)."""
    from twostream.data.video import read_frames

    sources = sorted(p for p in clips_dir.iterdir() if p.suffix in {".mp4", ".avi"}) if clips_dir.is_dir() else []
    if not sources:
        sys.exit(f"no clips (.mp4/.avi) in {clips_dir}: pass --clips DIR")
    clips = []
    for k, (width, height) in enumerate(sizes):
        frames = read_frames(sources[k % len(sources)], min_frames=pairs + 1)[:pairs + 1]
        clips.append(np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]))
    return clips


def bucket_of(size: int, step: int) -> int:
    return -(-size // step) * step


def run_way(overrides: list[str], buckets: int, clips_file: Path, out_file: Path) -> None:
    """In this (fresh) process: extract every clip of ``clips_file`` with tvl1, write times and flows."""
    import torch
    from hydra import compose, initialize_config_dir
    from torch._dynamo.utils import compilation_time_metrics

    from twostream.cache.extract import video_flow
    from twostream.flow import estimator_kwargs, get_estimator

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        flow = compose(config_name="config", overrides=["flow=tvl1", "flow.runtime.device=cpu", *overrides]).flow
    estimator = get_estimator(flow.name, **estimator_kwargs(flow))
    data = np.load(clips_file)
    results, flows = [], {}

    def compiled_s() -> float:
        return sum(compilation_time_metrics.get("_compile.compile_inner", []))

    for key in sorted(data.files, key=lambda k: int(k.split("_")[1])):
        frames = data[key]
        height, width = frames.shape[1:3]
        if buckets:
            pad_h, pad_w = bucket_of(height, buckets) - height, bucket_of(width, buckets) - width
            frames = np.stack([cv2.copyMakeBorder(f, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE) for f in frames])
        before, start = compiled_s(), time.perf_counter()
        with torch.no_grad():
            flow_out = video_flow(frames, estimator, flow.batch_size)[..., :height, :width]
        results.append({"size": f"{width}x{height}", "total_s": time.perf_counter() - start,
                        "compile_s": compiled_s() - before, "pairs": len(flow_out)})
        flows[key] = flow_out
        # what is done so far, for --partial when the way cannot finish (a static run of many sizes is long)
        np.save(out_file.with_name(f"{out_file.stem}_{key}.npy"), flow_out)
        out_file.with_suffix(".partial.json").write_text(json.dumps(results))
    np.savez(out_file.with_suffix(".npz"), **flows)
    out_file.write_text(json.dumps(results))


def endpoint_differences(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and largest end-point distance between two flows (N, 2, H, W)."""
    distance = np.sqrt(((a - b) ** 2).sum(1))
    return float(distance.mean()), float(distance.max())


def table(ways: dict[str, list[dict]], flows: dict[str, dict[str, np.ndarray]]) -> str:
    """One line per size, per way: compile s / total s, and end-point difference from the reference."""
    names = list(ways)
    head = ["size", *(f"{w}: compile / total s" for w in names),
            *(f"{w}: EPE vs {REFERENCE} mean / max px" for w in names if w != REFERENCE and REFERENCE in flows)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    keys = sorted(flows[names[0]], key=lambda k: int(k.split("_")[1]))
    worst: dict[str, list[float]] = {w: [] for w in names}
    for i, key in enumerate(keys):
        cells = [ways[names[0]][i]["size"]]
        cells += [f"{ways[w][i]['compile_s']:.1f} / {ways[w][i]['total_s']:.1f}" for w in names]
        for w in names:
            if w != REFERENCE and REFERENCE in flows:
                mean, largest = endpoint_differences(flows[w][key], flows[REFERENCE][key])
                worst[w].append(mean)
                cells.append(f"{mean:.4f} / {largest:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| way | compile s | total s | compile share | pairs/s | mean EPE vs static (px) | "
                  "worst size's mean EPE (px) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for w in names:
        compile_s = sum(r["compile_s"] for r in ways[w])
        total_s = sum(r["total_s"] for r in ways[w])
        pairs = sum(r["pairs"] for r in ways[w])
        epe = (f"{np.mean(worst[w]):.4f} | {max(worst[w]):.4f}" if worst[w] else "- | -")
        lines.append(f"| {w} | {compile_s:.1f} | {total_s:.1f} | {compile_s / total_s:.1%} | "
                     f"{pairs / max(total_s - compile_s, 1e-9):.2f} | {epe} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of real clips (.mp4/.avi)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[parse_size(s) for s in DEFAULT_SIZES],
                        help="frame sizes WIDTHxHEIGHT, one clip each (default: 10 at short side 256)")
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs per clip")
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS),
                        help=f"ways of compiling to run (in this order; {REFERENCE} is the EPE reference)")
    parser.add_argument("--bucket", type=int, default=128, help="buckets: sides rounded up to a multiple of this")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (OMP_NUM_THREADS) per way")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--work", type=Path, help="keep each way's times and flows here (default: a temporary "
                        "folder); a way already there is not run again, so an interrupted run resumes")
    parser.add_argument("--partial", action="store_true", help="run nothing: render what the ways in --work "
                        "have written so far, an interrupted way's finished sizes included (sizes all of them did)")
    parser.add_argument("--_way", help=argparse.SUPPRESS)  # internal: run one way in this process
    parser.add_argument("--_files", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._way:
        overrides, padded, _ = WAYS[args._way]
        run_way(overrides, args.bucket if padded else 0, *args._files)
        return
    if args.pairs < 1:
        parser.error("--pairs must be >= 1")
    missing = {w for w in args.ways if WAYS[w][2] and WAYS[w][2] not in args.ways}
    if missing:
        parser.error(f"{', '.join(sorted(missing))} reuse(s) the cache of a way not in --ways")
    clips = make_clips(args.clips, args.sizes, args.pairs)
    print(f"{len(clips)} clips of {args.pairs} pairs, sizes {' '.join(f'{w}x{h}' for w, h in args.sizes)}; "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    ways, flows = {}, {}
    with tempfile.TemporaryDirectory(prefix="tvl1_sizes_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clips_file = work / "clips.npz"
        if not clips_file.is_file():
            np.savez(clips_file, **{f"clip_{k}": c for k, c in enumerate(clips)})
        with np.load(clips_file) as kept:
            if [kept[f"clip_{k}"].shape for k in range(len(kept.files))] != [c.shape for c in clips]:
                sys.exit(f"{work} holds a run with other sizes or pairs: give another --work")
        for way in args.ways:
            out = work / f"{way}.json"
            if args.partial:
                done = out if out.is_file() else out.with_suffix(".partial.json")
                if done.is_file():
                    ways[way] = json.loads(done.read_text())
                    if done == out:
                        with np.load(out.with_suffix(".npz")) as saved:
                            flows[way] = {k: saved[k] for k in saved.files}
                    else:
                        flows[way] = {f"clip_{k}": np.load(work / f"{way}_clip_{k}.npy") for k in range(len(ways[way]))}
                continue
            if not out.is_file():
                cache_of = WAYS[way][2] or way
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
                       "TORCHINDUCTOR_CACHE_DIR": str(work / f"inductor_{cache_of}")}
                start = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--_way", way, "--bucket", str(args.bucket),
                                "--_files", str(clips_file), str(out)], env=env, check=True)
                print(f"{way}: {time.perf_counter() - start:.0f} s in all (process start included), "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
            ways[way] = json.loads(out.read_text())
            with np.load(out.with_suffix(".npz")) as saved:
                flows[way] = {k: saved[k] for k in saved.files}
    if args.partial:  # the sizes every way finished
        if not ways:
            print(f"no way has written anything in {work} yet")
            return
        common = min(len(v) for v in ways.values())
        ways = {w: v[:common] for w, v in ways.items()}
        flows = {w: {f"clip_{k}": f[f"clip_{k}"] for k in range(common)} for w, f in flows.items()}
    result = table(ways, flows)
    print(result)
    if args.out:
        args.out.write_text(result + "\n")


if __name__ == "__main__":
    main()
