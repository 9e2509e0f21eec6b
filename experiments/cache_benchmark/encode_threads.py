"""Extraction on the CPU with the cache's JPEG encoder on threads (now) against on Zarr's event loop (before).

Issue 11 moved :class:`~twostream.cache.codecs.JpegCodec`'s encoding off Zarr's event loop onto
threads, so that a video's chunks are compressed at once. This times the extract stage
(``num_workers=0``: decode, flow and write overlap) both ways on copies of the shared clips, each
round into fresh caches, the two modes interleaved so that other load hits both alike, and prints
the median pairs/s of each and their ratio (threads / event loop; above 1: faster now). It also
checks that both ways store the same bytes. Run from the repository root::

    python experiments/cache_benchmark/encode_threads.py            # DIS, 3 rounds
"""

import argparse
import contextlib
import filecmp
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from twostream.cache.codecs import JpegCodec
from twostream.cache.extract import ExtractSettings, extract_videos
from twostream.cache.store import CacheLayout, FlowCache
from twostream.data.splits import Video

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIPS = REPO / ".." / "shared" / "data" / "clips"
DIS = {"preset": "medium", "finest_scale": None}  # conf/flow/dis.yaml's params


@contextlib.contextmanager
def encoder_on_the_event_loop() -> Iterator[None]:
    """JpegCodec as it was before: each chunk encoded on Zarr's event loop, one after the other."""
    threaded = JpegCodec._encode_single

    async def on_the_loop(self, chunk_array, chunk_spec):
        return self._encode_sync(chunk_array, chunk_spec)

    JpegCodec._encode_single = on_the_loop
    try:
        yield
    finally:
        JpegCodec._encode_single = threaded


def same_files(a: Path, b: Path) -> bool:
    """Whether the arrays' chunk files under two caches are byte for byte the same (metadata aside)."""
    files = sorted(p.relative_to(a) for p in (a / "videos").rglob("*") if p.is_file() and p.name != "zarr.json")
    return bool(files) and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--copies", type=int, default=2, help="copies of each clip per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clips = sorted(args.clips.glob("*.mp4")) + sorted(args.clips.glob("*.avi"))
    if not clips:
        raise SystemExit(f"no clips in {args.clips}; pass --clips FOLDER")
    videos = [Video(f"{clip.stem}_{k}", clip, 0, None) for clip in clips for k in range(args.copies)]
    settings = ExtractSettings(estimator="dis", params=DIS, batch_size=16, short_side=None)
    layout = CacheLayout({"name": "jpeg", "level": 95}, {"name": "jpeg", "level": 95})
    modes = {"threads": contextlib.nullcontext, "event loop": encoder_on_the_event_loop}
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    work = Path(tempfile.mkdtemp(prefix="encode_threads_"))
    try:
        for r in range(args.rounds):
            for name, mode in modes.items():
                cache = FlowCache(work / f"{name}_{r}.zarr", {"bound": 20.0}, writable=True, layout=layout)
                with mode():
                    summary = extract_videos(videos, cache, settings, num_workers=0, prefetch=2, progress=False)
                seconds[name].append(summary.seconds)
                pairs = summary.pairs
        identical = same_files(work / "threads_0.zarr", work / "event loop_0.zarr")
    finally:
        shutil.rmtree(work)
    rate = {name: pairs / statistics.median(t) for name, t in seconds.items()}
    print(f"{len(videos)} videos, {pairs} pairs, DIS medium, JPEG q95 frames and flow; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; median of {args.rounds} rounds")
    for name, value in rate.items():
        print(f"  encoder on {name}: {value:.1f} pairs/s  (rounds: {', '.join(f'{s:.1f} s' for s in seconds[name])})")
    print(f"ratio threads / event loop: {rate['threads'] / rate['event loop']:.2f}; "
          f"stored bytes identical: {identical}")


if __name__ == "__main__":
    main()
