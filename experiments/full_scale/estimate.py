"""Disk, extraction and test-stage time of UCF-101, HMDB-51 and Kinetics-400, from figures measured here.

Measured on this machine, with the pipeline's own code and the config's defaults (short side 256,
JPEG q95 chunks of one frame / field):

- KB per stored RGB frame and per flow field, and the extract stage's flow pairs/s in one
  process (decode, flow, quantise, JPEG, write, overlapping), by extracting the real clips of
  ../shared/data/clips as a ``dataset=folder`` dataset once with ``cache.frames.keep=all`` and once
  with ``keep=protocol`` (25 positions, no training frames), one after the other;
- the test stage's CNN-M-2048 crops/s (224 px, one CPU thread) for the spatial (3 channels) and the
  temporal (2L = 20 channels) net.

They are scaled to each dataset's clip count, assumed mean length and frame size (per-pixel figures
scale with the pixels of a frame), for every ``cache.frames`` choice, and to N cores assuming linear
scaling (experiments/cache_benchmark measured 1.95x with 2 worker processes). GPU figures (tvl1
pairs/s, test-stage crops/s) were not measured here; the tables say so. Run from the repository root::

    OMP_NUM_THREADS=1 python experiments/full_scale/estimate.py --flow dis --cores 1 8 32
"""

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from twostream.cache import frame_selection, open_cache
from twostream.cache.extract import ExtractSettings, extract_videos
from twostream.cache.frames import FrameSelection
from twostream.data.catalog import load_split_lists
from twostream.models import build_model

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / ".." / "shared" / "data" / "clips"
TEST_POSITIONS, TEST_CROPS, L = 25, 10, 10  # the paper's test protocol and stack length


@dataclass(frozen=True)
class Dataset:
    name: str
    clips: int  # videos extracted (one cache serves every split)
    scored: int  # videos one split's test stage scores per stream (train + validation + test)
    frames: int  # mean frames per clip (an assumption: see `source`)
    width: int  # mean frame width at short side 256
    source: str


DATASETS = [
    Dataset("UCF-101", 13_320, 13_320, 186, 341, "13,320 clips (official lists), 320x240 -> 341x256; "
            "186 frames (7.4 s at 25 fps) is an assumed mean"),
    Dataset("HMDB-51", 6_766, 5_100, 90, 341, "6,766 clips, 3,570 train + 1,530 test per split (official "
            "lists); 90 frames (3 s at 30 fps) and 4:3 frames are assumptions, not measured"),
    Dataset("Kinetics-400", 240_000, 240_000, 300, 455, "~240k clips of ~10 s (the issue's figures); 300 "
            "frames (30 fps) and 16:9 frames (455x256) are assumptions for its mixed sizes"),
]
CHOICES = {  # label -> cache.frames
    "all": FrameSelection(),
    "every 4th": FrameSelection(keep="every", every=4, test_positions=TEST_POSITIONS),
    "protocol, 0 training frames": FrameSelection(keep="protocol", train_frames=0, test_positions=TEST_POSITIONS),
    "protocol, 6 training frames": FrameSelection(keep="protocol", train_frames=6, test_positions=TEST_POSITIONS),
}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def composed(flow: str, work: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return compose(config_name="config", overrides=[
            "dataset=folder", f"dataset.root={work / 'videos'}", "dataset.short_side=256", f"flow={flow}",
            f"paths.data_dir={work / 'data'}", "hydra.runtime.output_dir=.", *overrides])


def measure_extraction(flow: str, work: Path, *overrides: str) -> dict[str, float]:
    """Extract the shared clips: KB per stored frame and per field, pixels per frame, pairs/s of one process."""
    videos = work / "videos" / "clips"
    videos.mkdir(parents=True, exist_ok=True)
    for clip in sorted(CLIPS.iterdir()):  # test.avi and test.mp4 share a stem: name them apart
        link = videos / f"{clip.stem}_{clip.suffix[1:]}{clip.suffix}"
        if not link.exists():
            link.symlink_to(clip.resolve())
    cfg = composed(flow, work, f"cache.path={work}/cache.zarr", *overrides)
    lists = load_split_lists(cfg.dataset)
    listed = lists.train + lists.val + lists.test
    cache = open_cache(cfg, writable=True)
    summary = extract_videos(listed, cache, ExtractSettings.from_config(cfg), num_workers=0,
                             prefetch=cfg.extract.prefetch, progress=False)
    stored = sum(len(cache.frame_indices(v.id)) for v in listed)
    fields = sum(cache.num_flows(v.id) for v in listed)
    sizes = {v.id: cache.read_frames(v.id, 0).shape[1:3] for v in listed}
    pixels = sum(sizes[v.id][0] * sizes[v.id][1] * cache.num_flows(v.id) for v in listed) / fields  # per field
    root = Path(cfg.cache.path) / "videos"
    return {"clips": len(listed), "stored": stored, "fields": fields, "pixels": pixels,
            "kb_per_frame": sum(folder_bytes(root / v.id / "frames") for v in listed) / stored / 1e3,
            "kb_per_field": sum(folder_bytes(root / v.id / "flow_fwd") for v in listed) / fields / 1e3,
            "pairs_per_s": summary.pairs_per_second, "frames": OmegaConf.to_container(cfg.cache.frames)}


@torch.no_grad()
def crops_per_second(in_channels: int, batch: int = 25, repeats: int = 2) -> float:
    """CNN-M-2048 forward passes per second on 224 px crops, one CPU thread (the test stage's cost)."""
    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        model_cfg = compose(config_name="config", overrides=["model=cnn_m_2048"]).model
    model = build_model(model_cfg, in_channels=in_channels, classes_per_task=[101], input_size=224, dropout=0.5,
                        is_flow=in_channels != 3).eval()
    x = torch.randn(batch, in_channels, 224, 224)
    model(x)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        model(x)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flow", default="dis", help="a conf/flow config (a CPU method: tvl1 needs a GPU figure)")
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 8, 32], help="CPU cores for the time tables")
    args = parser.parse_args()
    if not CLIPS.is_dir():
        raise SystemExit(f"{CLIPS} is not present: this estimate measures the shared real clips")
    with tempfile.TemporaryDirectory() as tmp:
        every = measure_extraction(args.flow, Path(tmp) / "all", "cache.frames.keep=all")
        protocol = measure_extraction(args.flow, Path(tmp) / "protocol", "cache.frames.keep=protocol",
                                      "cache.frames.train_frames=0", f"test.num_positions={TEST_POSITIONS}")
    default_choice = frame_selection(composed(args.flow, Path(".")))
    spatial, temporal = crops_per_second(3), crops_per_second(2 * L)
    kb_per_mpx_frame = every["kb_per_frame"] / every["pixels"] * 1e6
    kb_per_mpx_field = every["kb_per_field"] / every["pixels"] * 1e6
    print(f"Measured ({args.flow}, {every['clips']} shared clips, {every['fields']} flow fields, mean "
          f"{every['pixels'] / 1e3:.0f} k pixels per frame): {every['kb_per_frame']:.1f} KB per RGB frame "
          f"({kb_per_mpx_frame:.0f} KB per megapixel), {every['kb_per_field']:.1f} KB per flow field "
          f"({kb_per_mpx_field:.0f} KB/Mpx); extract stage {every['pairs_per_s']:.1f} pairs/s in one process "
          f"keeping every frame, {protocol['pairs_per_s']:.1f} pairs/s ({protocol['pairs_per_s'] / every['pairs_per_s']:.2f}x) "
          f"keeping the 25 test positions ({protocol['stored']} of {every['stored']} frames stored); CNN-M-2048 at 224 px on one CPU thread: {spatial:.1f} spatial and {temporal:.1f} temporal "
          f"crops/s.\n")
    print("Disk (forward flow; cache.backward=true adds the flow column again):\n")
    print("| dataset | cache.frames | frames kept / clip | frames GB | flow GB | cache GB | frames x all | cache x all |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for d in DATASETS:
        mpx = d.width * 256 / 1e6
        flow_gb = d.clips * (d.frames - 1) * kb_per_mpx_field * mpx / 1e6
        base = None
        for label, choice in CHOICES.items():
            kept = len(choice.indices(d.frames))
            frames_gb = d.clips * kept * kb_per_mpx_frame * mpx / 1e6
            base = base or (frames_gb, frames_gb + flow_gb)
            mark = " (default)" if choice == default_choice else ""
            print(f"| {d.name} | {label}{mark} | {kept} | {frames_gb:.0f} | {flow_gb:.0f} | {frames_gb + flow_gb:.0f} "
                  f"| {frames_gb / base[0]:.2f} | {(frames_gb + flow_gb) / base[1]:.2f} |")
    print(f"\nExtraction hours ({args.flow}: the extract stage end to end; per-pixel pairs/s scaled to the "
          "frame size; N processes on N cores):\n")
    print("| dataset | cache.frames | flow fields | " + " | ".join(f"{n} core{'s' * (n > 1)}" for n in args.cores)
          + " | GPU |")
    print("|---|---|---:|" + "---:|" * len(args.cores) + "---|")
    for d in DATASETS:
        fields = d.clips * (d.frames - 1)
        for label, m in (("all", every), ("protocol", protocol)):
            pairs_per_s = m["pairs_per_s"] * m["pixels"] / (d.width * 256)
            hours = [fields / (pairs_per_s * n) / 3600 for n in args.cores]
            print(f"| {d.name} | {label} | {fields / 1e6:.1f} M | " + " | ".join(f"{h:.1f}" for h in hours)
                  + " | not measured (tvl1 on a GPU: experiments/gpu) |")
    print(f"\nTest-stage hours, one split, both streams ({TEST_POSITIONS} positions x {TEST_CROPS} crops of every "
          "scored video; forward passes only, measured on one CPU thread):\n")
    print("| dataset | videos scored | crops per stream | " + " | ".join(
        f"{n} core{'s' * (n > 1)}" for n in args.cores) + " | GPU |")
    print("|---|---:|---:|" + "---:|" * len(args.cores) + "---|")
    for d in DATASETS:
        crops = d.scored * TEST_POSITIONS * TEST_CROPS
        seconds = crops / spatial + crops / temporal
        print(f"| {d.name} | {d.scored:,} | {crops / 1e6:.1f} M | "
              + " | ".join(f"{seconds / n / 3600:.0f}" for n in args.cores)
              + " | not measured (no GPU here: experiments/gpu measures training samples/s, not this) |")
    print("\nAssumptions: " + "; ".join(f"{d.name}: {d.source}" for d in DATASETS) + ".")


if __name__ == "__main__":
    main()
