"""Tests of the built-in synthetic action dataset (twostream.data.synthetic)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from twostream.data.synthetic import SyntheticParams, _draw_clip, _object_track, generate_synthetic

APPEARANCES = ("Checker", "Stripes", "Dots")
MOTIONS = ("Slide", "Shuttle", "Accelerate", "Spin")

# Static camera and moderate speeds, so that measured object flow is the object's own motion.
MOTION_PARAMS: dict[str, Any] = dict(
    seed=3,
    height=64,
    width=64,
    num_frames=16,
    fps=12,
    groups_per_class=2,
    clips_per_group=2,
    test_groups=1,
    object_size=16,
    camera_pan=0.0,
    speed_range=[1.5, 2.0],
    spin_range=[6.0, 10.0],
    shuttle_period_range=[6.0, 8.0],
    background_blur=1.5,
    jpeg_quality=95,
)
# Small and panning: for determinism, idempotence and pan checks.
SMALL_PARAMS: dict[str, Any] = {
    **MOTION_PARAMS,
    "seed": 0,
    "height": 48,
    "width": 40,
    "num_frames": 8,
    "clips_per_group": 1,
    "object_size": 12,
    "camera_pan": 1.0,
}


def read_frames(path: Path) -> list[np.ndarray]:
    """Decode all frames of a video as RGB."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def video_path(root: Path, cls: str, group: int, clip: int) -> Path:
    return root / "videos" / cls / f"v_{cls}_g{group:02d}_c{clip:02d}.avi"


def all_videos(root: Path, params: dict[str, Any]) -> list[Path]:
    return [
        video_path(root, a + m, g, c)
        for a, m in itertools.product(APPEARANCES, MOTIONS)
        for g in range(1, params["groups_per_class"] + 1)
        for c in range(1, params["clips_per_group"] + 1)
    ]


def clip_paths(root: Path, cls: str) -> list[Path]:
    p = MOTION_PARAMS
    return [
        video_path(root, cls, g, c)
        for g in range(1, p["groups_per_class"] + 1)
        for c in range(1, p["clips_per_group"] + 1)
    ]


def object_flows(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Farneback flow (H x W x 2) between consecutive frames."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return [
        cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0) for a, b in itertools.pairwise(grey)
    ]


def moving_median(flow: np.ndarray) -> np.ndarray:
    """Median flow vector over the moving pixels (the object, as the camera is static); zero if none move."""
    moving = np.linalg.norm(flow, axis=2) > 0.3
    return np.median(flow[moving], axis=0) if moving.sum() >= 10 else np.zeros(2)


def reversals(vectors: np.ndarray) -> int:
    """Sign changes of the vectors projected on their principal axis, ignoring near-zero ones."""
    axis = np.linalg.eigh(vectors.T @ vectors)[1][:, -1]
    proj = vectors @ axis
    signs = np.sign(proj[np.abs(proj) > 0.5])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def object_pixels(frame: np.ndarray) -> np.ndarray:
    """Strongly coloured pixels (N x 3): the object's texture, as the background is grey-ish."""
    rgb = frame.reshape(-1, 3).astype(np.int32)
    return rgb[rgb.max(axis=1) - rgb.min(axis=1) > 80]


@pytest.fixture(scope="module")
def motion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("motion"), **MOTION_PARAMS)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("small"), **SMALL_PARAMS)


def test_videos_decode_with_opencv(small_root: Path) -> None:
    p = SMALL_PARAMS
    for path in all_videos(small_root, p):
        cap = cv2.VideoCapture(str(path))
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(p["fps"])
        cap.release()
        frames = read_frames(path)
        assert len(frames) == p["num_frames"], path
        assert all(f.shape == (p["height"], p["width"], 3) for f in frames), path


def test_deterministic_and_seeded(small_root: Path, tmp_path: Path) -> None:
    again = generate_synthetic(tmp_path / "again", **SMALL_PARAMS)
    other = generate_synthetic(tmp_path / "other", **{**SMALL_PARAMS, "seed": 1})
    for path in all_videos(small_root, SMALL_PARAMS):
        rel = path.relative_to(small_root)
        first = np.stack(read_frames(path))
        assert first.tobytes() == np.stack(read_frames(again / rel)).tobytes(), rel
        assert first.tobytes() != np.stack(read_frames(other / rel)).tobytes(), rel
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        assert (small_root / "splits" / name).read_text() == (again / "splits" / name).read_text()


def test_split_files(motion_root: Path) -> None:
    p = MOTION_PARAMS
    splits = motion_root / "splits"
    class_ind = {}
    for line in (splits / "classInd.txt").read_text().splitlines():
        label, name = line.split(" ")
        class_ind[name] = int(label)
    assert len(class_ind) == 12
    assert sorted(class_ind.values()) == list(range(1, 13))
    assert all("_" not in name and " " not in name for name in class_ind)
    # Appearance-major order: the first four classes share the first appearance.
    assert [name for name, _ in sorted(class_ind.items(), key=lambda kv: kv[1])][:4] == [
        APPEARANCES[0] + m for m in MOTIONS
    ]

    def parse(rel: str) -> tuple[str, int, int]:
        cls, file = rel.split("/")
        assert (motion_root / "videos" / rel).is_file(), rel
        prefix, name, group, clip = file.removesuffix(".avi").split("_")
        assert (prefix, name) == ("v", cls), rel
        return cls, int(group.removeprefix("g")), int(clip.removeprefix("c"))

    train_groups, test_groups = set(), set()
    train_lines = (splits / "trainlist01.txt").read_text().splitlines()
    for line in train_lines:
        rel, label = line.split(" ")
        cls, group, _ = parse(rel)
        assert class_ind[cls] == int(label), line
        train_groups.add((cls, group))
    test_lines = (splits / "testlist01.txt").read_text().splitlines()
    for line in test_lines:
        assert " " not in line, line
        cls, group, _ = parse(line)
        test_groups.add((cls, group))

    n_train_groups = p["groups_per_class"] - p["test_groups"]
    assert len(train_lines) == 12 * n_train_groups * p["clips_per_group"]
    assert len(test_lines) == 12 * p["test_groups"] * p["clips_per_group"]
    assert not train_groups & test_groups
    # The test groups are the last ones of each class.
    assert {g for _, g in test_groups} == set(range(n_train_groups + 1, p["groups_per_class"] + 1))


def test_slide_keeps_direction_and_shuttle_reverses(motion_root: Path) -> None:
    for appearance in APPEARANCES:
        for path in clip_paths(motion_root, appearance + "Slide"):
            medians = np.array([moving_median(f) for f in object_flows(read_frames(path))])
            # At most one reflection off a border fits in the clip at these speeds.
            assert reversals(medians) <= 1, path
            assert np.median(np.linalg.norm(medians, axis=1)) > 0.5, path
        for path in clip_paths(motion_root, appearance + "Shuttle"):
            medians = np.array([moving_median(f) for f in object_flows(read_frames(path))])
            # A period of at most 8 frames reverses at least 3 times in 15 flow fields.
            assert reversals(medians) >= 3, path


def test_accelerate_speeds_up(motion_root: Path) -> None:
    for appearance in APPEARANCES:
        for path in clip_paths(motion_root, appearance + "Accelerate"):
            speeds = np.linalg.norm([moving_median(f) for f in object_flows(read_frames(path))], axis=1)
            third = len(speeds) // 3
            # Ground truth ratio is about 6; flow of stripes moving along themselves is underestimated.
            assert speeds[-third:].mean() > max(2 * speeds[:third].mean(), 0.5), path


def test_spin_rotates_in_place(motion_root: Path) -> None:
    def curl_and_shift(path: Path) -> tuple[float, float]:
        """Median angular velocity (deg/frame) about the moving pixels' centroid, median translation."""
        curls, shifts = [], []
        for flow in object_flows(read_frames(path)):
            ys, xs = np.nonzero(np.linalg.norm(flow, axis=2) > 0.3)
            if len(xs) < 10:  # e.g. a bounce off a corner between the two frames
                continue
            vec = flow[ys, xs]
            rx, ry = xs - xs.mean(), ys - ys.mean()
            curls.append(np.degrees(np.mean((rx * vec[:, 1] - ry * vec[:, 0]) / (rx**2 + ry**2 + 1))))
            shifts.append(np.linalg.norm(np.median(vec, axis=0)))
        return abs(float(np.median(curls))), float(np.median(shifts))

    for appearance in APPEARANCES:
        for path in clip_paths(motion_root, appearance + "Spin"):
            curl, shift = curl_and_shift(path)
            assert curl > 2.2 and shift < 0.5, (path, curl, shift)
        for path in clip_paths(motion_root, appearance + "Slide"):
            curl, shift = curl_and_shift(path)
            # Stripes sliding along themselves show some spurious curl (aperture problem).
            assert curl < 2.0 and shift > 0.5, (path, curl, shift)


def test_camera_pan_moves_whole_scene(small_root: Path) -> None:
    pans = []
    for path in all_videos(small_root, SMALL_PARAMS):
        flows = object_flows(read_frames(path))
        global_flow = np.array([np.median(f.reshape(-1, 2), axis=0) for f in flows])
        # One constant pan per clip, bounded by camera_pan.
        assert np.abs(global_flow - global_flow.mean(axis=0)).max() < 0.3, path
        pans.append(np.linalg.norm(global_flow.mean(axis=0)))
    assert max(pans) < SMALL_PARAMS["camera_pan"] + 0.2
    assert np.mean(np.array(pans) > 0.3) > 0.5


def test_appearance_visible_in_rgb_motion_is_not(motion_root: Path) -> None:
    object_area = np.pi * (MOTION_PARAMS["object_size"] / 2) ** 2
    colours, hists = {}, {}
    for appearance, motion in itertools.product(APPEARANCES, MOTIONS):
        pixels = []
        for path in clip_paths(motion_root, appearance + motion):
            for frame in read_frames(path):
                obj = object_pixels(frame)
                # The coloured object is in every frame and the background adds no coloured pixels.
                assert 0.2 * object_area < len(obj) < 1.2 * object_area, (path, len(obj))
                pixels.append(obj)
        pixels = np.concatenate(pixels)
        colours[appearance, motion] = pixels.mean(axis=0)
        hist = np.histogramdd(pixels, bins=4, range=[(0, 256)] * 3)[0].ravel()
        hists[appearance, motion] = hist / hist.sum()

    for motion in MOTIONS:
        red, green, blue = colours["Checker", motion]
        assert red > max(green, blue) + 40, colours["Checker", motion]
        red, green, blue = colours["Stripes", motion]
        assert green > max(red, blue) + 40, colours["Stripes", motion]
        for a, b in itertools.combinations(APPEARANCES, 2):
            assert np.linalg.norm(colours[a, motion] - colours[b, motion]) > 60, (a, b, motion)
    for (a1, m1), (a2, m2) in itertools.combinations(hists, 2):
        distance = np.abs(hists[a1, m1] - hists[a2, m2]).sum()
        if a1 == a2:
            assert distance < 0.3, (a1, m1, m2, distance)
        else:
            assert distance > 1.5, (a1, a2, distance)


def test_regenerate_is_noop_and_params_are_checked(tmp_path: Path) -> None:
    root = generate_synthetic(tmp_path / "data", **SMALL_PARAMS)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert generate_synthetic(root, **SMALL_PARAMS) == root
    assert sorted(p for p in root.rglob("*") if p.is_file()) == files
    assert [p.stat().st_mtime_ns for p in files] == mtimes

    with pytest.raises(ValueError, match=r"camera_pan: 1\.0 -> 0\.5") as err:
        generate_synthetic(root, **{**SMALL_PARAMS, "camera_pan": 0.5})
    assert str(root) in str(err.value) and "delete the folder" in str(err.value)
    with pytest.raises(ValueError, match="speed_range"):
        generate_synthetic(root, **{**SMALL_PARAMS, "speed_range": [1.0, 2.0]})


def test_missing_video_is_regenerated_identically(small_root: Path, tmp_path: Path) -> None:
    root = generate_synthetic(tmp_path / "data", **SMALL_PARAMS)
    victim = video_path(root, "DotsSpin", 2, 1)
    victim.unlink()
    generate_synthetic(root, **SMALL_PARAMS)
    assert victim.read_bytes() == video_path(small_root, "DotsSpin", 2, 1).read_bytes()
    assert not list(root.rglob(".*.tmp.avi"))


def test_invalid_params_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="test_groups"):
        generate_synthetic(tmp_path, **{**SMALL_PARAMS, "test_groups": SMALL_PARAMS["groups_per_class"]})
    with pytest.raises(ValueError, match="object_size"):
        generate_synthetic(tmp_path, **{**SMALL_PARAMS, "object_size": SMALL_PARAMS["width"]})
    assert not (tmp_path / "generator.json").exists()


def test_other_appearances_and_motions(tmp_path: Path) -> None:
    """A dataset of other textures and a subset of the motions: its classes are the product in the
    given order, each texture shows its own colours, the motion is the one named, and a clip of a
    default class is byte-identical to the default dataset's (its class index is the same)."""
    params = {**SMALL_PARAMS, "appearances": ["Checker", "Sectors", "Grid", "Halves"], "motions": ["Slide", "Spin"]}
    root = generate_synthetic(tmp_path / "other", **params)
    names = [line.split()[1] for line in (root / "splits" / "classInd.txt").read_text().splitlines()]
    assert names == ["CheckerSlide", "CheckerSpin", "SectorsSlide", "SectorsSpin", "GridSlide", "GridSpin",
                     "HalvesSlide", "HalvesSpin"]
    train = (root / "splits" / "trainlist01.txt").read_text().splitlines()
    assert {int(line.split()[1]) for line in train} == set(range(1, 9))
    # every texture's colours tell it from every other's (as test_appearance_visible_in_rgb_motion_is_not
    # checks for the default three)
    hists = {}
    for appearance in params["appearances"]:
        pixels = np.concatenate([object_pixels(f) for f in read_frames(video_path(root, appearance + "Slide", 1, 1))])
        hist = np.histogramdd(pixels, bins=4, range=[(0, 256)] * 3)[0].ravel()
        hists[appearance] = hist / hist.sum()
    for a, b in itertools.combinations(hists, 2):
        assert np.abs(hists[a] - hists[b]).sum() > 1.5, (a, b)
    # CheckerSlide is class 0 in both datasets: the same random draw, the same bytes
    default = generate_synthetic(tmp_path / "default", **SMALL_PARAMS)
    assert video_path(root, "CheckerSlide", 1, 1).read_bytes() == video_path(default, "CheckerSlide", 1, 1).read_bytes()
    # CheckerSpin is class 1 here but class 3 in the default set: another draw
    assert video_path(root, "CheckerSpin", 1, 1).read_bytes() != video_path(default, "CheckerSpin", 1, 1).read_bytes()


def test_dataset_generated_before_class_options_is_still_valid(small_root: Path, tmp_path: Path) -> None:
    """A generator.json without appearances/motions/texture_colours (written before they existed) was generated with
    the defaults: the default config reuses it, another class set is refused."""
    root = tmp_path / "old"
    shutil.copytree(small_root, root)
    meta = json.loads((root / "generator.json").read_text())
    for key in ("appearances", "motions", "texture_colours"):
        del meta[key]
    (root / "generator.json").write_text(json.dumps(meta))
    mtimes = [p.stat().st_mtime_ns for p in sorted(root.rglob("*.avi"))]
    assert generate_synthetic(root, **SMALL_PARAMS) == root
    assert [p.stat().st_mtime_ns for p in sorted(root.rglob("*.avi"))] == mtimes
    with pytest.raises(ValueError, match="motions"):
        generate_synthetic(root, **{**SMALL_PARAMS, "motions": ["Slide"]})


@pytest.mark.parametrize("key, value", [("appearances", ["Plaid"]), ("motions", ["Slide", "Slide"]),
                                        ("motions", [])])
def test_unknown_or_repeated_class_parts_rejected(tmp_path: Path, key: str, value: list[str]) -> None:
    with pytest.raises(ValueError, match=f"{key} must be distinct names of"):
        generate_synthetic(tmp_path, **{**SMALL_PARAMS, key: value})
    assert not list(tmp_path.iterdir())


def test_shared_texture_colours_leave_only_the_pattern(tmp_path: Path) -> None:
    """texture_colours draws every texture in one colour pair: the object's colours no longer tell the
    appearances apart (their coloured pixels have the pair's colour), while the default colours do."""
    blue, white = [40, 40, 230], [245, 245, 245]
    params = {**SMALL_PARAMS, "motions": ["Slide"], "texture_colours": [blue, white]}
    root = generate_synthetic(tmp_path / "patterns", **params)
    default = generate_synthetic(tmp_path / "default", **{**SMALL_PARAMS, "motions": ["Slide"]})
    means = {}
    for appearance in APPEARANCES:
        frames = read_frames(video_path(root, appearance + "Slide", 1, 1))
        pixels = np.concatenate([object_pixels(f) for f in frames])
        assert len(pixels) > 10 * len(frames), appearance
        means[appearance] = pixels.mean(axis=0)
        # the same clip in its own colours, and the same draw: only the texture's colours changed
        own = read_frames(video_path(default, appearance + "Slide", 1, 1))
        assert np.abs(own[0].astype(int) - frames[0].astype(int)).max() > 80, appearance
    # one colour for all (blue, paler at the anti-aliased edges), where the own colours are far apart
    for a, b in itertools.combinations(APPEARANCES, 2):
        assert np.linalg.norm(means[a] - means[b]) < 20, (a, b, means)
    assert all(mean[2] > max(mean[:2]) + 80 for mean in means.values()), means
    with pytest.raises(ValueError, match="texture_colours"):
        generate_synthetic(root, **{**params, "texture_colours": [white, blue]})


@pytest.mark.parametrize("colours", [[[230, 40, 40]], [[230, 40], [0, 0, 0]], [[256, 0, 0], [0, 0, 0]],
                                     ["red", "white"], [[230, 40, "x"], [0, 0, 0]], 5])
def test_invalid_texture_colours_rejected(tmp_path: Path, colours: list[list[int]]) -> None:
    with pytest.raises(ValueError, match="texture_colours must be null or two RGB colours"):
        generate_synthetic(tmp_path, **{**SMALL_PARAMS, "texture_colours": colours})
    assert not list(tmp_path.iterdir())


def test_processes_generating_one_folder_at_once_all_succeed(small_root: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "data"
    script = ("import json, sys; from twostream.data.synthetic import generate_synthetic; "
              "generate_synthetic(sys.argv[1], **json.loads(sys.argv[2]))")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(root), json.dumps(SMALL_PARAMS)],
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], errors
    made = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.suffix == ".avi")
    assert made == sorted(p.relative_to(small_root) for p in all_videos(small_root, SMALL_PARAMS))
    assert all((root / p).read_bytes() == (small_root / p).read_bytes() for p in made)
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]


OTHER_PARAMS: dict[str, Any] = {**MOTION_PARAMS, "appearances": ["Sectors", "Grid", "Halves"],
                                "motions": ["Circle", "Zigzag", "Pulse", "Wobble"]}


@pytest.fixture(scope="module")
def other_motions_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("other_motions"), **OTHER_PARAMS)


def other_clips(root: Path, motion: str) -> list[Path]:
    return [video_path(root, a + motion, g, c) for a in OTHER_PARAMS["appearances"]
            for g in range(1, OTHER_PARAMS["groups_per_class"] + 1) for c in range(1, OTHER_PARAMS["clips_per_group"] + 1)]


def signed_changes(values: np.ndarray, floor: float) -> int:
    """Sign changes of ``values``, ignoring those within ``floor`` of 0."""
    signs = np.sign(values[np.abs(values) > floor])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def about_centroid(flow: np.ndarray) -> tuple[float, float, float] | None:
    """Over the moving pixels: mean outward flow (px/frame), mean angular velocity (deg/frame) about their
    centroid, and the median flow's length (translation); None where too few pixels move."""
    ys, xs = np.nonzero(np.linalg.norm(flow, axis=2) > 0.3)
    if len(xs) < 10:
        return None
    vec = flow[ys, xs]
    rx, ry = xs - xs.mean(), ys - ys.mean()
    outward = np.mean((rx * vec[:, 0] + ry * vec[:, 1]) / (np.hypot(rx, ry) + 1))
    curl = np.degrees(np.mean((rx * vec[:, 1] - ry * vec[:, 0]) / (rx**2 + ry**2 + 1)))
    return float(outward), float(curl), float(np.linalg.norm(np.median(vec, axis=0)))


def test_the_other_motions_move_as_named_in_the_videos(other_motions_root: Path) -> None:
    """Measured with Farneback flow on the written videos: Circle's direction turns steadily;
    Pulse's flow points out then in (no translation); Wobble's curl reverses (Spin's never does)."""
    for path in other_clips(other_motions_root, "Circle"):
        medians = np.array([moving_median(f) for f in object_flows(read_frames(path))])
        turns = np.degrees(np.angle(np.exp(1j * np.diff(np.arctan2(medians[:, 1], medians[:, 0])))))
        # one turn in 12-16 frames: 22-30 degrees a frame (a border mirrors the path, and its sense, at
        # times); Slide's and Shuttle's median turn is a few degrees
        assert 15 < np.median(np.abs(turns)) < 40, (path, turns)
    for motion, (outward_min, curl_min) in {"Pulse": (0.15, 0.0), "Wobble": (0.0, 1.5)}.items():
        for path in other_clips(other_motions_root, motion):
            outward, curl, shift = np.array([m for f in object_flows(read_frames(path))
                                             if (m := about_centroid(f)) is not None]).T
            assert np.median(shift) < 0.5, (path, "in place")
            if motion == "Pulse":  # a period of 6-8 frames: out and in at least twice in 15 fields
                assert np.abs(outward).mean() > outward_min and signed_changes(outward, 0.2) >= 2, (path, outward)
            else:
                assert np.abs(curl).mean() > curl_min and signed_changes(curl, 0.2) >= 2, (path, curl)


def test_the_other_motions_tracks(other_motions_root: Path) -> None:
    """The ground-truth tracks, frame by frame: Zigzag keeps its speed and turns by 90 degrees, never
    reversing; Circle keeps its speed and turns by 360 / period degrees a frame; Pulse's scale stays in
    [1 - depth, 1] and reaches both; Wobble's angle moves at Spin's angular speed and reverses."""
    p = SyntheticParams(**{**OTHER_PARAMS, "num_frames": 64})
    for clip in range(20):
        for motion in OTHER_PARAMS["motions"]:
            draws = _draw_clip(p, motion, np.random.default_rng([7, clip]))
            offset, angle, scale = _object_track(p, motion, draws)
            velocity = np.diff(offset, axis=0)
            if motion in ("Circle", "Zigzag"):
                speed = np.linalg.norm(velocity, axis=1)
                heading = np.degrees(np.arctan2(velocity[:, 1], velocity[:, 0]))
                turns = np.abs((np.diff(heading) + 180) % 360 - 180)
                assert np.all(angle == draws.angle) and np.all(scale == 1)
            if motion == "Circle":
                assert speed == pytest.approx(np.full_like(speed, draws.speed * np.sinc(1 / draws.period)), rel=1e-9)
                assert turns == pytest.approx(np.full_like(turns, 360 / abs(draws.period)))
            elif motion == "Zigzag":
                # each frame wholly on one side moves at the speed; a frame that crosses a switch is shorter
                assert speed.max() == pytest.approx(draws.speed) and speed.min() > draws.speed / np.sqrt(2) - 1e-9
                assert turns.max() <= 90 + 1e-6 and turns.max() > 60
                assert np.all(np.abs(velocity @ [np.cos(draws.direction), np.sin(draws.direction)])
                              == pytest.approx(draws.speed / np.sqrt(2)))  # always forwards along the axis
            elif motion == "Pulse":
                assert np.all(offset == 0) and np.all(angle == draws.angle)
                assert scale.max() == pytest.approx(1, abs=0.05) and scale.min() == pytest.approx(1 - draws.speed, abs=0.05)
                assert 0.3 <= draws.speed <= 0.6
            else:
                assert np.all(offset == 0) and np.all(scale == 1)
                spin = np.diff(angle)
                assert np.abs(spin).max() == pytest.approx(abs(draws.speed))
                assert signed_changes(spin, 1e-9) >= 64 // 8 and abs(angle - draws.angle).max() <= abs(draws.speed) * 2


def test_every_default_motion_keeps_its_track_unchanged() -> None:
    """The default motions' tracks as written before the other motions existed (an independent
    computation): every dataset generated before keeps its bytes."""
    p = SyntheticParams(**MOTION_PARAMS)
    t = np.arange(p.num_frames, dtype=np.float64)
    for clip in range(5):
        for motion in MOTIONS:
            d = _draw_clip(p, motion, np.random.default_rng([7, clip]))
            axis = np.array([np.cos(d.direction), np.sin(d.direction)])
            along = {"Slide": d.speed * t, "Accelerate": 0.5 * d.speed / t[-1] * t**2, "Spin": 0 * t,
                     "Shuttle": d.speed * (np.abs((t + (d.phase or 0)) % (d.period or 1) - (d.period or 1) / 2)
                                           - (d.period or 1) / 4)}[motion]
            offset, angle, scale = _object_track(p, motion, d)
            assert np.array_equal(offset, along[:, None] * axis) and np.all(scale == 1.0), motion
            assert np.array_equal(angle, d.angle + (d.speed * t if motion == "Spin" else 0 * t)), motion
