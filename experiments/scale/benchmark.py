"""Every stage's cost against the number of videos, on a UCF-101-shaped dataset of tiny clips.

Every name of the official UCF-101 split-1 lists (../shared/data/ucf101_splits: 101 classes, 13,320
clips) is written as a tiny generated clip (``--frames`` frames of ``--size`` px, the synthetic
generator's textures and motions, one texture colouring per class so that all 101 classes differ).
The pipeline then runs ``dataset=ucf101`` end to end on a tenth, a third and all of the lists (every
k-th line of each list), each size in its own folder, stage by stage in its own process: extract (as
two shards at once, ``extract.shard=0/2`` and ``1/2``, into one cache), train, test, fuse. For each
stage it records wall seconds, the peak resident memory of its process (the larger shard's for
extract), and the files and bytes it added; the table gives each stage's growth from the smallest
size against the growth of the videos. After extraction at each size the cache is checked: every
listed video complete exactly once (its frames and flow fields all there), none failed, none missing.

    python experiments/scale/benchmark.py --out experiments/scale/table.md

Costs are the machine's: compare the growth factors, not the seconds, across machines.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from twostream.cache.store import FlowCache
from twostream.data.splits import parse_ucf101
from twostream.data.synthetic import (
    APPEARANCES,
    MOTIONS,
    SyntheticParams,
    _background,
    _render_clip,
    _write_video,
)

REPO = Path(__file__).resolve().parents[2]
SPLITS = REPO / ".." / "shared" / "data" / "ucf101_splits"
# name -> every k-th line of each list
SIZES = {"tenth": 10, "third": 3, "all": 1}
STAGES = ("extract", "train", "test", "fuse")
# textures with their own colourings (the generator's TEXTURE_COLOURS keys): all of them, not only
# the default dataset's three, so 101 classes need fewer colourings
TEXTURES = ("Checker", "Stripes", "Dots", "Sectors", "Grid", "Halves")
_GROUP = re.compile(r"_g(\d+)_c(\d+)$")


def clip_params(frames: int, size: int, class_index: int) -> tuple[SyntheticParams, str, str]:
    """The generator parameters, texture and motion of one class: texture x motion, and a colouring
    of its own (from the class index) so that no two of the 101 classes look alike."""
    texture = TEXTURES[class_index % len(TEXTURES)]
    motion = MOTIONS[(class_index // len(TEXTURES)) % len(MOTIONS)]
    colours = np.random.default_rng([7, class_index]).integers(0, 256, (2, 3)).tolist()
    params = SyntheticParams(seed=0, height=size, width=size, num_frames=frames, fps=25, groups_per_class=25,
                             clips_per_group=7, test_groups=7, object_size=max(8, size // 4), camera_pan=1.0,
                             speed_range=[1.0, 3.0], spin_range=[5.0, 10.0], shuttle_period_range=[6.0, 8.0],
                             background_blur=1.5, jpeg_quality=90, appearances=list(APPEARANCES),
                             motions=list(MOTIONS), texture_colours=colours)
    return params, texture, motion


def _write_clip(job: tuple[Path, int, str, int, int]) -> None:
    path, label, stem, frames, size = job
    params, texture, motion = clip_params(frames, size, label)
    group, clip = (int(x) for x in _GROUP.search(stem).groups())
    background = _background(params, np.random.default_rng([0, 0, group]))
    rendered = _render_clip(params, texture, motion, background, np.random.default_rng([0, 1, label, group, clip]))
    _write_video(path, rendered, params.fps, params.jpeg_quality)


def write_dataset(root: Path, frames: int, size: int) -> int:
    """Every clip of the split-1 lists under ``root/videos`` (existing clips are kept); the number listed."""
    lists = parse_ucf101(SPLITS, 1, root / "videos")
    videos = lists.train + lists.test
    jobs = [(v.path, v.label, v.path.stem, frames, size) for v in videos if not v.path.exists()]
    if jobs:
        print(f"writing {len(jobs)} clips of {frames} frames, {size}x{size} px under {root / 'videos'}", flush=True)
        with Pool(2) as pool:
            for done, _ in enumerate(pool.imap_unordered(_write_clip, jobs, chunksize=64), 1):
                if done % 2000 == 0:
                    print(f"  {done}/{len(jobs)}", flush=True)
    return len(videos)


def write_lists(root: Path, name: str, every: int) -> Path:
    """classInd.txt and every ``every``-th line of trainlist01/testlist01, in ``root/lists/name``."""
    folder = root / "lists" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classInd.txt").write_text((SPLITS / "classInd.txt").read_text())
    for list_name in ("trainlist01.txt", "testlist01.txt"):
        lines = [line for line in (SPLITS / list_name).read_text().splitlines() if line.strip()]
        (folder / list_name).write_text("\n".join(lines[::every]) + "\n")
    return folder


def tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``."""
    files = size = 0
    for directory, _, names in os.walk(path):
        for name in names:
            try:
                size += os.stat(os.path.join(directory, name)).st_size
                files += 1
            except FileNotFoundError:
                pass
    return files, size


@dataclass
class StageCost:
    seconds: float
    peak_mb: float
    files: int
    bytes: int
    inner: dict[str, float] = field(default_factory=dict)  # "stage X done in Y s" of each job
    cpu_seconds: float | None = None  # user + system CPU of the stage's processes (both shards), from wait4
    load: list[float] | None = None  # the 1-minute load average at the stage's start and end
    commit: str | None = None  # the code that ran it (code_version)


def run_processes(commands: list[list[str]], logs: list[Path]) -> tuple[float, float, float]:
    """Run ``commands`` at once; (wall seconds, largest peak RSS in MB of any of them, their CPU seconds
    summed: user + system, children included). Fails on a non-zero exit."""
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="offline", HYDRA_FULL_ERROR="1")
    start = time.perf_counter()
    procs = []
    for command, log in zip(commands, logs, strict=True):
        with log.open("w") as out:
            procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO))
    peak = cpu = 0.0
    for proc, log in zip(procs, logs, strict=True):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak = max(peak, usage.ru_maxrss / 1024)  # Linux: KiB
        cpu += usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(proc.args)} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - start, peak, cpu


CODE = ("twostream", "conf", "experiments/scale/benchmark.py")  # what a stage's cost depends on


def code_version() -> str:
    """The last commit that changed the code a stage runs (``CODE``; commits of documents alone leave it
    as it is), with "+" when the working tree's code differs from it."""
    head = subprocess.run(["git", "log", "-1", "--format=%h", "--", *CODE], capture_output=True, text=True,
                          cwd=REPO).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE],
                           capture_output=True, text=True, cwd=REPO).stdout
    return head.strip() + ("+" if dirty.strip() else "")


def check_cache(cache_path: Path, list_dir: Path, video_root: Path, frames: int) -> str:
    """Every listed video complete once in the cache, with all its frames and fields; raise otherwise."""
    lists = parse_ucf101(list_dir, 1, video_root)
    listed = sorted({v.id for v in lists.train + lists.test})
    cache = FlowCache.open(cache_path)
    stored, failed = cache.video_ids(), cache.failures()
    missing, extra = sorted(set(listed) - set(stored)), sorted(set(stored) - set(listed))
    wrong = [v for v in stored if cache.num_frames(v) != frames or cache.num_flows(v) != frames - 1]
    leftovers = [p.name for p in (cache_path / "videos").rglob("*") if p.name.startswith(".")]
    if missing or extra or failed or wrong or leftovers:
        raise SystemExit(f"cache {cache_path}: {len(missing)} missing, {len(extra)} unlisted, {len(failed)} failed, "
                         f"{len(wrong)} with other than {frames} frames / {frames - 1} fields, "
                         f"{len(leftovers)} staging leftovers (e.g. {(missing + extra + wrong + leftovers)[:3]})")
    return f"{len(stored)} listed videos complete once, {frames} frames and {frames - 1} fields each; none failed"


def run_size(work: Path, name: str, every: int, overrides: list[str], frames: int, stages: list[str]
             ) -> tuple[int, dict[str, StageCost]]:
    """``stages`` at one size; (videos listed, cost of every stage measured at this size so far).

    Each stage's cost is kept in ``work/name/costs/STAGE.json``, so that stages can be run (or rerun)
    by separate invocations and the table still has them all."""
    list_dir = write_lists(work, name, every)
    here = work / name
    base = [sys.executable, "-m", "twostream", "dataset=ucf101", f"dataset.root={work / 'videos'}",
            f"dataset.splits_dir={list_dir}", f"name=scale_{name}", f"paths.data_dir={here / 'data'}",
            f"hydra.run.dir={here / 'outputs'}", "progress=false", *overrides]
    lists = parse_ucf101(list_dir, 1, work / "videos")
    for stage in stages:
        logs_dir = here / "logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        files_before, bytes_before = tree_size(here)
        if stage == "extract":  # two shards at once into one cache, each in a run folder of its own
            commands = [[*base, "stage=extract", f"extract.shard={i}/2", f"hydra.run.dir={here / f'extract_{i}'}"]
                        for i in range(2)]
            logs = [logs_dir / f"extract_{i}.log" for i in range(2)]
        else:
            commands, logs = [[*base, f"stage={stage}"]], [logs_dir / f"{stage}.log"]
        load_before = os.getloadavg()[0]
        seconds, peak, cpu = run_processes(commands, logs)
        files_after, bytes_after = tree_size(here)
        inner = {}
        for log in logs:
            for job, secs in re.findall(r"stage (\S+) done in ([\d.]+) s", log.read_text()):
                inner[job] = max(inner.get(job, 0.0), float(secs))
        cost = StageCost(seconds, peak, files_after - files_before, bytes_after - bytes_before, inner, cpu,
                         [load_before, os.getloadavg()[0]], code_version())
        (here / "costs").mkdir(exist_ok=True)
        (here / "costs" / f"{stage}.json").write_text(json.dumps(dataclasses.asdict(cost)))
        print(f"[{name}] {stage}: {seconds:.1f} s ({cpu:.1f} CPU s, load {load_before:.1f}->{cost.load[1]:.1f}), peak {peak:.0f} MB, +{files_after - files_before} files, "
              f"+{(bytes_after - bytes_before) / 1e6:.1f} MB {inner}", flush=True)
        if stage == "extract":
            caches = list((here / "data" / "cache").glob("*.zarr"))
            print(f"[{name}] shards: {check_cache(caches[0], list_dir, work / 'videos', frames)}", flush=True)
    costs = {stage: StageCost(**json.loads((here / "costs" / f"{stage}.json").read_text()))
             for stage in STAGES if (here / "costs" / f"{stage}.json").is_file()}
    return len(lists.train) + len(lists.test), costs


def extraction_rates(cache: Path) -> list[float]:
    """Videos/s over each quarter of an extraction, from the times its videos were committed: a rate
    that falls as the cache fills is a cost that grows with the cache; a flat one is linear."""
    committed = np.sort([(video / "zarr.json").stat().st_mtime for folder in (cache / "videos").iterdir()
                         if folder.is_dir() for video in folder.iterdir() if (video / "zarr.json").is_file()])
    ends = [len(committed) * q // 4 for q in range(4)] + [len(committed) - 1]
    return [(b - a) / max(committed[b] - committed[a], 1e-9) for a, b in zip(ends, ends[1:], strict=False)]


def table(results: dict[str, tuple[int, dict[str, StageCost]]]) -> str:
    """The markdown table: per size and stage, the cost and its growth from the smallest size: CPU
    seconds of the stage's processes (both shards' for extraction), the measure linearity is judged
    on (one thread per process, so the machine's other jobs barely change it, where they stretch
    the wall seconds); wall seconds of the stage's process; the work inside it (the pipeline's own
    stage timings, summed over streams; the slower shard's for extraction). Each row says the load
    average at its start and end and the commit that ran it."""
    results = dict(sorted(results.items(), key=lambda item: item[1][0]))
    n0, base = next(iter(results.values()))
    rows = ["| size | videos | stage | CPU s | growth | wall s | growth | in-stage s | growth | videos' growth "
            "| peak MB | files | MB written | load | commit |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]

    def growth(value: float | None, first: float | None, linear: float, judged: bool) -> str:
        if value is None or not first:
            return "-"
        mark = " **over 1.2x linear**" if judged and value / first > 1.2 * linear else ""
        return f"{value / first:.2f}x{mark}"

    for name, (n, costs) in results.items():
        for stage, cost in costs.items():
            if stage not in base:
                continue
            first = base[stage]
            inner, inner0 = sum(cost.inner.values()), sum(first.inner.values())
            cpu = "-" if cost.cpu_seconds is None else f"{cost.cpu_seconds:.1f}"
            load = "-" if cost.load is None else f"{cost.load[0]:.1f}-{cost.load[1]:.1f}"
            rows.append(f"| {name} | {n} | {stage} | {cpu} | {growth(cost.cpu_seconds, first.cpu_seconds, n / n0, True)} "
                        f"| {cost.seconds:.1f} | {growth(cost.seconds, first.seconds, n / n0, False)} | {inner:.1f} "
                        f"| {growth(inner, inner0, n / n0, False)} | {n / n0:.2f}x | {cost.peak_mb:.0f} | {cost.files} "
                        f"| {cost.bytes / 1e6:.1f} | {load} | {cost.commit or '-'} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "data" / "scale", help="where clips, caches and runs go")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--stages", nargs="*", default=list(STAGES), choices=list(STAGES),
                        help="stages to run (in this order; none: only the table); the others' costs are read from earlier runs")
    parser.add_argument("--frames", type=int, default=12, help="frames per clip (>= 11 for L=10 flow stacks)")
    parser.add_argument("--size", type=int, default=64, help="frame width and height, px")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every stage")
    args = parser.parse_args()
    if not SPLITS.is_dir():
        raise SystemExit(f"{SPLITS} is not present: the benchmark writes the official UCF-101 lists' videos")
    overrides = ["model=cnn_m_tiny", "flow=dis", "dataset.short_side=null", "streams.spatial.epochs=1",
                 "streams.temporal.epochs=1", "test.num_positions=2", "test.crops=1",
                 f"train.crop_size={args.size - 8}", *args.overrides]
    started = datetime.datetime.now(datetime.UTC)
    listed = write_dataset(args.work, args.frames, args.size)
    print(f"{listed} clips listed", flush=True)
    results = {name: run_size(args.work, name, SIZES[name], overrides, args.frames, args.stages) for name in args.sizes}
    commit = code_version()
    rates = {name: extraction_rates(cache) for name in SIZES
             for cache in (args.work / name / "data" / "cache").glob("*.zarr")}
    text = (f"{platform.node()}, {os.cpu_count()} cores, started {started:%Y-%m-%d %H:%M} UTC, commit {commit}"
            f"\n`{' '.join(sys.argv)}`\n\n{table(results)}\n\nExtraction, videos/s in each quarter "
            f"of the run (as the cache fills): " + "; ".join(f"{name}: {', '.join(f'{r:.1f}' for r in rs)}"
                                                             for name, rs in rates.items()) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
