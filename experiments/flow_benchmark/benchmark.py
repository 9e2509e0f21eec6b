"""Flow estimators side by side: mean end-point error against known motion and pairs/s, in one run.

Ground truth is made from real frames (default: ../shared/data/clips/mmaction2_test.mp4, 340x256):

* ``smooth``: a frame warped by a known smooth random flow (affine + low-frequency noise, up to
  ``--max-px``), so the pair obeys brightness constancy exactly;
* ``noisy``: the same pairs with independent Gaussian noise (``--noise`` grey levels) on both frames;
* ``object``: the smooth background plus an elliptical object cut from another frame of the clip that
  moves with its own translation: a motion boundary; the background it occludes is not scored.

Every estimator is a config of conf/flow (composed by Hydra as ``flow=NAME`` plus overrides), so
the rows run exactly what ``python -m twostream flow=NAME`` would extract with. Speed is wall-clock
pairs/s on the smooth pairs in batches of the config's ``batch_size``, after one warm-up call (which
compiles tvl1's kernels; its time is the ``warm-up`` column). The speed rounds interleave the
estimators so that a busy machine slows all of them alike; the table gives the median round. Run
from the repository root::

    OMP_WAIT_POLICY=PASSIVE python experiments/flow_benchmark/benchmark.py   # or: nox -s bench_flow

With OpenMP's default spin-waiting, torch on a CPU shared with other busy processes runs several
times slower (see the README), so the nox session sets ``OMP_WAIT_POLICY=PASSIVE``; the header of
the table says which policy a run had. OpenCV's own thread pool is not affected by it.
"""

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_dir

from twostream.data.video import read_frames
from twostream.flow import FlowEstimator, estimator_kwargs, get_estimator
from twostream.flow.groundtruth import endpoint_error, moving_object_pair, smooth_random_flow, warp_to_prev

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIP = REPO / ".." / "shared" / "data" / "clips" / "mmaction2_test.mp4"
REFERENCE = "opencv_tvl1"  # the row the ratios compare with
ROWS = {  # label -> Hydra overrides of the flow group
    "tvl1": ["flow=tvl1"],
    "tvl1_fast": ["flow=tvl1_fast"],
    "tvl1 (OpenCV's epsilon 0.01)": ["flow=tvl1", "flow.params.epsilon=0.01"],
    "tvl1 eager (not compiled)": ["flow=tvl1", "flow.runtime.compile=false"],
    "opencv_tvl1": ["flow=opencv_tvl1"],
    "deepflow": ["flow=deepflow"],
    "farneback": ["flow=farneback"],
    "dis": ["flow=dis"],
    "brox": ["flow=brox"],
}


@dataclass
class PairSet:
    prev: np.ndarray
    nxt: np.ndarray
    flow: np.ndarray
    valid: np.ndarray


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


def make_sets(frames: np.ndarray, pairs: int, max_px: float, noise: float, seed: int) -> dict[str, PairSet]:
    """The three ground-truth sets (see the module docstring), ``pairs`` pairs each, spread over the clip."""
    rng = np.random.default_rng(seed)
    count, height, width = len(frames), frames.shape[1], frames.shape[2]
    smooth, objects = [], []
    for index in np.linspace(0, count - 1, pairs).astype(int):
        flow = smooth_random_flow(rng, height, width, rng.uniform(0.3, 1.0) * max_px)
        prev, valid = warp_to_prev(frames[index], flow)
        smooth.append((prev, frames[index], flow, valid))
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0) * max_px
        objects.append(moving_object_pair(
            frames[index], frames[(index + count // 2) % count], flow,
            centre=(rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height),
            radii=(rng.uniform(0.1, 0.2) * width, rng.uniform(0.1, 0.25) * height),
            motion=(speed * np.cos(angle), speed * np.sin(angle))))
    sets = {"smooth": PairSet(*map(np.stack, zip(*smooth, strict=True))),
            "object": PairSet(*map(np.stack, zip(*objects, strict=True)))}
    clean = sets["smooth"]

    def noisy(frames_: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(frames_ + rng.normal(0, noise, frames_.shape)), 0, 255).astype(np.uint8)

    sets["noisy"] = PairSet(noisy(clean.prev), noisy(clean.nxt), clean.flow, clean.valid)
    return {name: sets[name] for name in ("smooth", "noisy", "object")}


def run_batches(row: Row, pairs: PairSet) -> np.ndarray:
    assert row.estimator is not None
    step = row.batch_size
    return np.concatenate([row.estimator(pairs.prev[i:i + step], pairs.nxt[i:i + step])
                           for i in range(0, len(pairs.prev), step)])


def build_rows(labels: list[str]) -> list[Row]:
    rows = []
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        for label in labels:
            flow = compose(config_name="config", overrides=ROWS[label]).flow
            row = Row(label, " ".join(ROWS[label]), batch_size=int(flow.batch_size))
            try:
                row.estimator = get_estimator(flow.name, **estimator_kwargs(flow))
            except RuntimeError as error:  # e.g. brox without an OpenCV built with CUDA
                row.unavailable = str(error).split(";")[0]
            rows.append(row)
    return rows


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row], sets: list[str], pairs: int) -> str:
    reference = next((r for r in rows if r.label == REFERENCE and r.seconds), None)
    ref_rate = pairs / statistics.median(reference.seconds) if reference else None
    head = ["estimator", "config", *[f"EPE {name} (px)" for name in sets], "pairs/s", "warm-up (s)"]
    if reference:
        head += [f"EPE / {REFERENCE} (smooth)", f"speed / {REFERENCE}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row.unavailable:
            lines.append(f"| {row.label} | {row.settings} | " + " | ".join(["-"] * (len(head) - 3))
                         + f" | unavailable: {row.unavailable} |")
            continue
        rate = pairs / statistics.median(row.seconds)
        cells = [row.label, row.settings, *[fmt(row.epe[name]) for name in sets], fmt(rate, 1),
                 fmt(row.warm_up_s, 1)]
        if reference:
            cells += [fmt(row.epe["smooth"] / reference.epe["smooth"], 2), fmt(rate / ref_rate, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="real video to take frames from")
    parser.add_argument("--pairs", type=int, default=16, help="pairs per ground-truth set")
    parser.add_argument("--max-px", type=float, default=6.0, help="largest displacement of the true flow")
    parser.add_argument("--noise", type=float, default=3.0, help="noise std (grey levels) of the noisy set")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds over the smooth set")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and OpenCV")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="ROW",
                        help=f"rows to run (default all): {', '.join(ROWS)}")
    args = parser.parse_args()
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: no such video; pass --clip PATH (any real clip, ideally 340x256)")

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    frames = read_frames(args.clip)
    sets = make_sets(frames, args.pairs, args.max_px, args.noise, args.seed)
    rows = build_rows(args.rows)
    runnable = [r for r in rows if not r.unavailable]
    for row in runnable:
        start = time.perf_counter()
        row.estimator(sets["smooth"].prev[:row.batch_size], sets["smooth"].nxt[:row.batch_size])
        row.warm_up_s = time.perf_counter() - start
        for name, pairs in sets.items():
            start = time.perf_counter()
            flow = run_batches(row, pairs)
            if name == "smooth":
                row.seconds.append(time.perf_counter() - start)
            row.epe[name] = endpoint_error(flow, pairs.flow, pairs.valid)
        print(f"{row.label}: EPE {row.epe}", flush=True)
    for _ in range(args.rounds - 1):
        for row in runnable:
            start = time.perf_counter()
            run_batches(row, sets["smooth"])
            row.seconds.append(time.perf_counter() - start)

    height, width = frames.shape[1:3]
    print(f"\n{args.pairs} pairs per set at {width}x{height} from {args.clip.name}, true flow up to "
          f"{args.max_px:g} px, noise {args.noise:g} grey levels, {args.threads} thread(s), median of "
          f"{args.rounds} timed rounds, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (spin)')}; torch {torch.__version__}, "
          f"OpenCV {cv2.__version__}\n")
    print(table(rows, list(sets), args.pairs))


if __name__ == "__main__":
    main()
