"""Flow estimators side by side: end-point error on many kinds of known motion, and pairs/s, in one run.

Every case of ``cases.py`` (frame sizes from 64x64 crops to 1280x720; translation, zoom, rotation,
affine, smooth random, moving objects, 10-20 px motion, near-static frames, brightness change,
noise; real frames of ../shared/data/clips and synthetic scenes) is a row of the first table, every
estimator a column: its mean EPE and, in brackets, the ratio to ``opencv_tvl1``'s. The second table
gives each estimator's mean EPE, its mean and **worst-case** ratio over the cases (and over the
held-out cases alone), and its speed.

Every estimator is a config of conf/flow (composed by Hydra as ``flow=NAME`` plus overrides), so
the rows run exactly what ``python -m twostream flow=NAME`` would extract with; ``--variant`` adds
rows with other overrides (how the defaults were tuned). Speed is wall-clock pairs/s on 340x256
pairs (smooth random motion, frames of the tuning clip) in batches of the config's ``batch_size``,
after one warm-up call (which compiles tvl1's kernels: the ``warm-up`` column); the timed rounds
interleave the estimators so that a busy machine slows all of them alike, and the table gives the
median round. Run from the repository root, as a user runs it (no environment variables)::

    python experiments/flow_benchmark/benchmark.py          # or: nox -s bench_flow
"""

import twostream  # noqa: F401  (first, as in `python -m twostream`: it sets OpenMP's wait policy before torch loads)

# isort: split
import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cases.py beside this script
from cases import CASES, HELD_OUT, TUNE, TUNING_CLIP, Case, PairSet, make_pairs, smooth  # noqa: E402

from twostream.flow import FlowEstimator, batch_pairs, estimator_kwargs, get_estimator  # noqa: E402
from twostream.flow.groundtruth import endpoint_error  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIPS = REPO / ".." / "shared" / "data" / "clips"
REFERENCE = "opencv_tvl1"  # the column the ratios compare with
SPEED_CASE = Case("speed: smooth random 340x256", TUNE, (340, 256), TUNING_CLIP, smooth)
ROWS = {  # label -> Hydra overrides of the flow group
    "tvl1": ["flow=tvl1"],
    "tvl1_fast": ["flow=tvl1_fast"],
    "opencv_tvl1": ["flow=opencv_tvl1"],
    "deepflow": ["flow=deepflow"],
    "farneback": ["flow=farneback"],
    "dis": ["flow=dis"],
    "brox": ["flow=brox"],
}


@dataclass
class Row:
    label: str
    settings: str
    estimator: FlowEstimator | None = None
    batch_size: int = 1
    unavailable: str = ""
    warm_up_s: float = 0.0
    epe: dict[str, float] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)


def run_batches(row: Row, pairs: PairSet) -> np.ndarray:
    assert row.estimator is not None
    step = row.batch_size
    return np.concatenate([row.estimator(pairs.prev[i:i + step], pairs.nxt[i:i + step])
                           for i in range(0, len(pairs.prev), step)])


def build_rows(rows: dict[str, list[str]]) -> list[Row]:
    built = []
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        for label, overrides in rows.items():
            flow = compose(config_name="config", overrides=overrides).flow
            row = Row(label, " ".join(overrides))
            try:
                row.estimator = get_estimator(flow.name, **estimator_kwargs(flow))
                row.batch_size = batch_pairs(row.estimator, flow.batch_size, *SPEED_CASE.size[::-1])
            except RuntimeError as error:  # e.g. brox without an OpenCV built with CUDA
                row.unavailable = str(error).split(";")[0]
            built.append(row)
    return built


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def case_table(rows: list[Row], cases: list[Case]) -> str:
    """One line per case, one column per estimator: EPE (ratio to the reference's EPE)."""
    reference = next((r for r in rows if r.label == REFERENCE and r.epe), None)
    runnable = [r for r in rows if not r.unavailable]
    lines = ["| case | group | " + " | ".join(r.label for r in runnable) + " |",
             "|---|---|" + "---:|" * len(runnable)]
    for case in cases:
        cells = []
        for row in runnable:
            ratio = f" ({row.epe[case.name] / reference.epe[case.name]:.2f})" if reference else ""
            cells.append(fmt(row.epe[case.name]) + ratio)
        lines.append(f"| {case.name} | {case.group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(rows: list[Row], cases: list[Case], speed_pairs: int) -> str:
    """Per estimator: mean EPE, mean and worst ratio to the reference (all cases, held-out ones), speed."""
    reference = next((r for r in rows if r.label == REFERENCE and r.epe), None)
    ref_rate = speed_pairs / statistics.median(reference.seconds) if reference else None
    held_out = [c.name for c in cases if c.group == HELD_OUT]
    head = ["estimator", "config", "mean EPE (px)", f"mean EPE / {REFERENCE}", f"worst EPE / {REFERENCE} (case)",
            f"worst held-out / {REFERENCE}", "pairs/s 340x256", f"speed / {REFERENCE}", "warm-up (s)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        if row.unavailable:
            lines.append(f"| {row.label} | {row.settings} | unavailable: {row.unavailable} |")
            continue
        rate = speed_pairs / statistics.median(row.seconds)
        cells = [row.label, row.settings, fmt(statistics.mean(row.epe.values())), "-", "-", "-", fmt(rate, 1), "-",
                 fmt(row.warm_up_s, 1)]
        if reference:
            ratios = {name: row.epe[name] / reference.epe[name] for name in row.epe}
            worst = max(ratios, key=ratios.get)
            cells[3] = fmt(statistics.mean(ratios.values()), 2)
            cells[4] = f"{ratios[worst]:.2f} ({worst})"
            cells[5] = fmt(max((ratios[name] for name in held_out), default=None), 2)
            cells[7] = fmt(rate / ref_rate, 2)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of the real clips")
    parser.add_argument("--group", choices=[TUNE, HELD_OUT, "all"], default="all", help="which cases to run")
    parser.add_argument("--cases", nargs="+", metavar="TEXT", help="only the cases whose name contains a TEXT")
    parser.add_argument("--pairs", type=int, help="pairs per case (default: each case's own, 1-2)")
    parser.add_argument("--speed-pairs", type=int, default=8, help="340x256 pairs per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and OpenCV")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="ROW",
                        help=f"estimators to run (default all): {', '.join(ROWS)}")
    parser.add_argument("--variant", action="append", default=[], metavar="OVERRIDES",
                        help="an extra row: Hydra overrides in one string, e.g. 'flow=tvl1 flow.params.epsilon=0.01'")
    args = parser.parse_args()
    missing = [name for name in {c.source for c in CASES} - {"synthetic"} if not (args.clips / name).is_file()]
    if missing:
        raise SystemExit(f"{args.clips}: missing {', '.join(sorted(missing))}; pass --clips FOLDER")

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    cases = [c for c in CASES if args.group in ("all", c.group)
             and (not args.cases or any(text in c.name for text in args.cases))]
    if args.pairs:
        cases = [replace(c, pairs=args.pairs) for c in cases]
    sets = {case.name: make_pairs(case, args.clips, args.seed) for case in cases}
    speed_set = make_pairs(replace(SPEED_CASE, pairs=args.speed_pairs), args.clips, args.seed)
    rows = build_rows({label: ROWS[label] for label in args.rows} | {v: v.split() for v in args.variant})
    runnable = [r for r in rows if not r.unavailable]
    for row in runnable:
        start = time.perf_counter()
        row.estimator(speed_set.prev[:row.batch_size], speed_set.nxt[:row.batch_size])
        row.warm_up_s = time.perf_counter() - start
        for case in cases:
            row.epe[case.name] = endpoint_error(run_batches(row, sets[case.name]), sets[case.name].flow,
                                                sets[case.name].valid)
        print(f"{row.label}: EPE {fmt(statistics.mean(row.epe.values()))} px on average", flush=True)
    for _ in range(args.rounds):
        for row in runnable:
            start = time.perf_counter()
            run_batches(row, speed_set)
            row.seconds.append(time.perf_counter() - start)

    print(f"\n{len(cases)} cases ({sum(c.group == HELD_OUT for c in cases)} held out of tuning), seed "
          f"{args.seed}; speed: {args.speed_pairs} pairs at 340x256, median of {args.rounds} rounds; "
          f"{args.threads} thread(s), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average "
          f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, OpenCV {cv2.__version__}\n")
    print(case_table(rows, cases), end="\n\n")
    print(summary_table(rows, cases, args.speed_pairs))


if __name__ == "__main__":
    main()
