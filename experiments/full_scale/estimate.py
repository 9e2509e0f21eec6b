"""Disk and extraction time of a full dataset, scaled from the shared real clips extracted as configured.

The three clips of ../shared/data/clips are laid out as a ``dataset=folder`` dataset and extracted by
the pipeline's own extraction code, at the paper's frame size (256 on the short side) and the cache's
default codecs. Bytes per frame and per flow field, and flow pairs/s of one extraction process, are
measured; they are scaled to ``--clips`` clips of ``--frames`` frames each. Run from the repository root::

    python experiments/full_scale/estimate.py --flow dis farneback
"""

import argparse
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from twostream.cache import open_cache
from twostream.cache.extract import ExtractSettings, extract_videos
from twostream.data.catalog import load_split_lists

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / ".." / "shared" / "data" / "clips"
UCF101_CLIPS = 13_320
UCF101_FRAMES = 186  # assumed mean frames per clip (about 7.4 s at 25 fps)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(flow: str, short_side: int, work: Path) -> dict[str, float]:
    """Extract the clips with ``flow``; bytes per frame and per field, and pairs/s of one process."""
    videos = work / "videos" / "clips"
    videos.mkdir(parents=True, exist_ok=True)
    for clip in sorted(CLIPS.iterdir()):  # test.avi and test.mp4 share a stem: name them apart
        link = videos / f"{clip.stem}_{clip.suffix[1:]}{clip.suffix}"
        if not link.exists():
            link.symlink_to(clip.resolve())
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[
            "dataset=folder", f"dataset.root={work / 'videos'}", f"dataset.short_side={short_side}",
            f"flow={flow}", f"paths.data_dir={work / 'data'}", "hydra.runtime.output_dir=."])
    lists = load_split_lists(cfg.dataset)
    videos_listed = lists.train + lists.test
    cache = open_cache(cfg, writable=True)
    summary = extract_videos(videos_listed, cache, ExtractSettings.from_config(cfg), num_workers=0,
                             prefetch=cfg.extract.prefetch, progress=False)
    frames = sum(cache.num_frames(v.id) for v in videos_listed)
    fields = sum(cache.num_flows(v.id) for v in videos_listed)
    root = Path(cfg.cache.path) / "videos"
    frame_bytes = sum(folder_bytes(root / v.id / "frames") for v in videos_listed)
    flow_bytes = sum(folder_bytes(root / v.id / "flow_fwd") for v in videos_listed)
    return {"frames": frames, "fields": fields, "kb_per_frame": frame_bytes / frames / 1e3,
            "kb_per_field": flow_bytes / fields / 1e3, "pairs_per_s": summary.pairs_per_second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flow", nargs="+", default=["dis", "farneback"], help="conf/flow configs")
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--clips", type=int, default=UCF101_CLIPS)
    parser.add_argument("--frames", type=int, default=UCF101_FRAMES, help="mean frames per clip")
    args = parser.parse_args()
    if not CLIPS.is_dir():
        raise SystemExit(f"{CLIPS} is not present: this estimate measures the shared real clips")
    total_frames = args.clips * args.frames
    total_fields = args.clips * (args.frames - 1)
    print(f"{args.clips} clips x {args.frames} frames = {total_frames:,} frames, short side {args.short_side}\n")
    print("| flow | measured frames / fields | KB per frame | KB per flow field | flow pairs/s (1 process) "
          "| frames GB | flow GB | cache GB | extraction hours (1 process) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for flow in args.flow:
            m = measure(flow, args.short_side, Path(tmp) / flow)
            frames_gb, flow_gb = total_frames * m["kb_per_frame"] / 1e6, total_fields * m["kb_per_field"] / 1e6
            hours = total_fields / m["pairs_per_s"] / 3600
            print(f"| {flow} | {m['frames']} / {m['fields']} | {m['kb_per_frame']:.1f} | {m['kb_per_field']:.1f} "
                  f"| {m['pairs_per_s']:.0f} | {frames_gb:.1f} | {flow_gb:.1f} | {frames_gb + flow_gb:.1f} "
                  f"| {hours:.1f} |")


if __name__ == "__main__":
    main()
