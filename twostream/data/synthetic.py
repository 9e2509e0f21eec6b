"""Built-in synthetic action dataset: real MJPG videos plus UCF-101-style split files.

Every class is one cell of an APPEARANCE x MOTION grid (by default Checker, Stripes, Dots x the four
motions below; ``appearances`` and ``motions`` choose others, e.g. a second dataset with other looks,
and ``texture_colours`` can draw every texture in one colour pair), so a single RGB frame identifies the
appearance but not the motion, while optical flow identifies the motion but not the appearance
(all objects share one shape and size). Only the two streams together can name the class, which
is exactly what two-stream fusion should exploit.

Each video shows one textured disc over a smooth grey-ish background; the whole scene pans with
a random per-clip camera velocity (removed by mean-flow subtraction). The disc's own motion is
one of:

* ``Slide``: constant velocity.
* ``Shuttle``: back and forth along an axis at constant speed (triangle wave): one flow field
  looks like Slide, a stack of ~10 does not.
* ``Accelerate``: speed grows linearly from 0, so a single flow field overlaps Slide's speeds.
* ``Spin``: rotation in place about the centre.

Four more motions, which no default class has, make classes that are new actions rather than the
default ones on other textures (a second dataset whose classes are other motions, as the paper's
UCF-101 classes added to HMDB-51): ``OTHER_MOTIONS``.

* ``Circle``: round a small circle at constant speed (one turn in twice a Shuttle period): the
  direction of one flow field turns from field to field.
* ``Zigzag``: constant speed along an axis at 45 degrees to it, switching side every half period:
  the flow turns by 90 degrees, where Shuttle's reverses.
* ``Pulse``: in place, the disc shrinks and grows back (a triangle wave of its scale): the flow
  points outwards, then inwards.
* ``Wobble``: in place, rotation back and forth at Spin's angular speed (a triangle wave of its
  angle): the curl reverses every half period.

The disc is kept inside the frame by reflecting its path at the borders. Its unfolded start is
uniform over a whole reflection period, which makes its position in every frame uniformly
distributed for every class: position carries no class information.

All randomness comes from ``np.random.default_rng`` seeded by (seed, group) for backgrounds and (seed, class, group, clip) for clips, so a
clip never depends on how many other clips are generated.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import cv2
import numpy as np

from twostream.errors import ConfigError, DataError

FORMAT_VERSION = 1

# The default appearances and motions (the embedded dataset's 12 classes).
APPEARANCES = ("Checker", "Stripes", "Dots")
MOTIONS = ("Slide", "Shuttle", "Accelerate", "Spin")
# Motions that no default class has: the classes of a dataset of new actions (conf/dataset/
# synthetic_other_motions.yaml, the multi-task study's extra set).
OTHER_MOTIONS = ("Circle", "Zigzag", "Pulse", "Wobble")
# Pulse's depth: the fraction of its diameter the disc loses at its smallest, uniform in this range.
_PULSE_DEPTH = (0.3, 0.6)
# RGB colour pairs of each texture: saturated, so that appearance stands out from the grey background.
# The last three appear in no default class: a dataset made of them looks different from the default
# one (e.g. pre-training data, or a second task), while every texture still shows rotation.
TEXTURE_COLOURS = {
    "Checker": ((220, 30, 30), (245, 245, 245)),
    "Stripes": ((30, 200, 60), (15, 15, 15)),
    "Dots": ((240, 220, 40), (30, 60, 225)),
    "Sectors": ((250, 140, 0), (90, 0, 160)),
    "Grid": ((0, 200, 200), (120, 40, 0)),
    "Halves": ((255, 105, 180), (0, 90, 0)),
}
# What dataset.generator.texture_colours must be (both of its checks say so).
_COLOURS_RULE = "texture_colours must be null or two RGB colours [[r, g, b], [r, g, b]] with values in 0..255"
# Texture periods per object diameter: coarse enough to survive JPEG at 16 px, fine enough to show spin.
_TEXTURE_PERIODS = 4
# Supersampling factor for anti-aliased texture and disc edge.
_SUPERSAMPLE = 8
# Background grey level, contrast (std of intensity) and per-group colour tint amplitude.
_BG_MEAN = 128.0
_BG_STD = 32.0
_BG_TINT = 12.0

@dataclass(frozen=True)
class SyntheticParams:
    """Everything a generated dataset depends on (``dataset.generator`` in conf/dataset/synthetic.yaml).

    Attributes:
        seed: base seed of all randomness.
        height, width: frame size in px.
        num_frames: frames per video.
        fps: frame rate stored in the videos.
        groups_per_class: groups per class; clips of a group share the background, like UCF groups.
        clips_per_group: clips per group.
        test_groups: number of trailing groups per class that form the test split.
        object_size: diameter of the disc in px.
        camera_pan: maximum camera pan speed in px/frame (per clip uniform in [0, camera_pan], random
            direction).
        speed_range: [min, max] object speed in px/frame of Slide and Shuttle; Accelerate ends at a
            speed uniform in [max, 2 * max].
        spin_range: [min, max] Spin angular speed in degrees/frame (random sign).
        shuttle_period_range: [min, max] Shuttle period (there and back) in frames; also Zigzag's, Pulse's
            and Wobble's, and half of Circle's (one turn).
        background_blur: Gaussian sigma in px of the low-pass noise background (texture scale).
        jpeg_quality: MJPG quality, 1..100.
        appearances: the textures (keys of ``TEXTURE_COLOURS``), in class order.
        motions: the motions (of ``MOTIONS`` and ``OTHER_MOTIONS``), in class order; the classes are every appearance
            with every motion, appearance-major (:meth:`classes`).
        texture_colours: None (each texture in its own colours, ``TEXTURE_COLOURS``) or two RGB
            colours that every texture is drawn in, so that only its pattern tells it apart.

    Values are cast to their field's type (a config may pass 6.0 for an int, OmegaConf lists for
    ranges), so they compare equal to what ``generator.json`` stores; invalid values raise ConfigError.
    """

    seed: int
    height: int
    width: int
    num_frames: int
    fps: int
    groups_per_class: int
    clips_per_group: int
    test_groups: int
    object_size: int
    camera_pan: float
    speed_range: list[float]
    spin_range: list[float]
    shuttle_period_range: list[float]
    background_blur: float
    jpeg_quality: int
    appearances: list[str] = field(default_factory=lambda: list(APPEARANCES))
    motions: list[str] = field(default_factory=lambda: list(MOTIONS))
    texture_colours: list[list[int]] | None = None

    def __post_init__(self) -> None:
        for name, kind in get_type_hints(type(self)).items():
            value = getattr(self, name)
            if kind in (list[float], list[str]):
                value = [kind.__args__[0](v) for v in value]
            elif name == "texture_colours" and value is not None:
                try:
                    value = [[int(channel) for channel in colour] for colour in value]
                except (TypeError, ValueError):
                    raise ConfigError(f"synthetic dataset: {_COLOURS_RULE}, got {value}") from None
            object.__setattr__(self, name, kind(value) if kind in (int, float) else value)
        _validate(self)

    def classes(self) -> tuple[str, ...]:
        """The class names, appearance-major, as written to classInd.txt (e.g. ``CheckerSlide``)."""
        return tuple(a + m for a, m in itertools.product(self.appearances, self.motions))

    def to_json(self) -> dict[str, Any]:
        """The parameters as ``generator.json`` stores them (with the format version)."""
        return {"format_version": FORMAT_VERSION, **asdict(self)}


def video_name(class_name: str, group: int, clip: int) -> str:
    """UCF-101 file name of clip ``clip`` of group ``group`` (both 1-based), e.g. ``v_CheckerSlide_g01_c02.avi``."""
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def generate_synthetic(root: str | Path, **params: Any) -> Path:
    """Write the synthetic dataset with :class:`SyntheticParams` ``params`` under ``root`` (idempotent);
    return ``root``.

    Layout: ``videos/<Class>/v_<Class>_gXX_cYY.avi``, ``splits/{classInd,trainlist01,testlist01}.txt``
    (UCF-101 format; the last ``test_groups`` groups of each class are test) and ``generator.json``.

    Raises:
        ConfigError: invalid parameters. DataError: ``root`` already holds a dataset generated with other
            parameters.
    """
    root = Path(root)
    p = SyntheticParams(**params)
    n_groups, n_clips = p.groups_per_class, p.clips_per_group
    classes = p.classes()
    videos = {
        (ci, g, c): root / "videos" / name / video_name(name, g, c)
        for ci, name in enumerate(classes)
        for g in range(1, n_groups + 1)
        for c in range(1, n_clips + 1)
    }

    meta_path = root / "generator.json"
    with _exclusive(root):  # two runs started at once: the second waits, then finds the dataset made
        _generate_once(root, p, classes, videos, meta_path)
    return root


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root/.generate.lock`` (released when the process ends, even killed)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".generate.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _generate_once(root: Path, p: SyntheticParams, classes: tuple[str, ...],
                   videos: dict[tuple[int, int, int], Path], meta_path: Path) -> None:
    """Write the dataset unless ``root`` already holds it complete (see :func:`generate_synthetic`)."""
    n_groups, n_clips, seed = p.groups_per_class, p.clips_per_group, p.seed
    if meta_path.exists():
        # a generator.json written before a field existed was generated with the field's default
        predating = {f.name: f.default_factory() if f.default_factory is not MISSING else f.default
                     for f in fields(SyntheticParams)
                     if f.default_factory is not MISSING or f.default is not MISSING}
        old = {**predating, **json.loads(meta_path.read_text())}
        wanted = p.to_json()
        diff = sorted(k for k in old.keys() | wanted.keys() if old.get(k) != wanted.get(k))
        if diff:
            changes = ", ".join(f"{k}: {old.get(k)!r} -> {wanted.get(k)!r}" for k in diff)
            raise DataError(
                f"{root} holds a synthetic dataset generated with other parameters ({changes}); "
                "choose another dataset.root or delete the folder."
            )
        if all(path.exists() for path in videos.values()):
            return

    # the order of p.classes(): class ci draws from its own seed whatever the other classes are
    for ci, (appearance, motion) in enumerate(itertools.product(p.appearances, p.motions)):
        for g in range(1, n_groups + 1):
            # Clips of group g share its background, like the scene of a UCF-101 group, and so do
            # all classes: a background then says nothing about the class, so a net cannot learn
            # to recognise training scenes instead of appearance or motion.
            background = _background(p, np.random.default_rng([seed, 0, g]))
            for c in range(1, n_clips + 1):
                draws = _draw_clip(p, motion, np.random.default_rng([seed, 1, ci, g, c]))
                frames = _render_clip(p, appearance, motion, background, draws)
                _write_video(videos[ci, g, c], frames, p.fps, p.jpeg_quality)

    _write_splits(root / "splits", classes, n_groups, n_clips, p.test_groups)
    # Written last: its presence marks a complete dataset, so an interrupted run is simply redone.
    tmp = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(p.to_json(), indent=2) + "\n")
    os.replace(tmp, meta_path)


def _validate(p: SyntheticParams) -> None:
    for key, available in (("appearances", tuple(TEXTURE_COLOURS)), ("motions", MOTIONS + OTHER_MOTIONS)):
        names = getattr(p, key)
        unknown = [n for n in names if n not in available]
        if not names or unknown or len(set(names)) != len(names):
            raise ConfigError(f"synthetic dataset: {key} must be distinct names of {', '.join(available)}; "
                              f"got {names}")
    colours = p.texture_colours
    if colours is not None and (len(colours) != 2 or any(len(c) != 3 or not all(0 <= v <= 255 for v in c)
                                                         for c in colours)):
        raise ConfigError(f"synthetic dataset: {_COLOURS_RULE}, got {colours}")
    for key in ("speed_range", "spin_range", "shuttle_period_range"):
        lo_hi = getattr(p, key)
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
            raise ConfigError(f"synthetic dataset: {key} must be [min, max] with 0 <= min <= max, got {lo_hi}")
    if p.shuttle_period_range[0] <= 0:
        raise ConfigError("synthetic dataset: shuttle_period_range must be positive")
    if not 1 <= p.test_groups < p.groups_per_class:
        raise ConfigError(
            f"synthetic dataset: need 1 <= test_groups < groups_per_class, got {p.test_groups} "
            f"and {p.groups_per_class}"
        )
    if p.seed < 0:
        raise ConfigError(f"synthetic dataset: seed must be >= 0, got {p.seed}")
    if p.clips_per_group < 1 or p.num_frames < 2 or p.fps < 1:
        raise ConfigError("synthetic dataset: clips_per_group, fps must be >= 1 and num_frames >= 2")
    if not 4 <= p.object_size < min(p.height, p.width):
        raise ConfigError(
            f"synthetic dataset: object_size must be in [4, min(height, width)), got {p.object_size}"
        )
    if p.camera_pan < 0 or p.background_blur <= 0 or not 1 <= p.jpeg_quality <= 100:
        raise ConfigError(
            "synthetic dataset: need camera_pan >= 0, background_blur > 0, 1 <= jpeg_quality <= 100"
        )


def _pan_margin(p: SyntheticParams) -> int:
    """Background border (px) so that a camera centred at mid-clip never pans past the background."""
    return math.ceil(p.camera_pan * (p.num_frames - 1) / 2) + 2


def _background(p: SyntheticParams, rng: np.random.Generator) -> np.ndarray:
    """Smooth grey-ish float32 RGB texture of the frame size plus the pan margin on every side."""
    m = _pan_margin(p)
    shape = (p.height + 2 * m, p.width + 2 * m)
    sigma = p.background_blur
    # Two octaves: the fine one gives dense flow something to lock on, the coarse one looks like a scene.
    fine = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    coarse = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 4 * sigma)
    texture = fine / fine.std() + coarse / coarse.std()
    grey = _BG_MEAN + _BG_STD * texture / texture.std()
    tint = rng.uniform(-_BG_TINT, _BG_TINT, 3).astype(np.float32)
    return np.clip(grey[..., None] + tint, 0, 255)


def _object_sprite(appearance: str, size: int, colours: list[list[int]] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied RGB texture and alpha (float32, size x size) of the anti-aliased textured disc, in
    ``colours`` (two RGB colours) or else the texture's own ``TEXTURE_COLOURS``."""
    n = size * _SUPERSAMPLE
    # Texture coordinates in object diameters, centred on the disc.
    u, v = np.meshgrid((np.arange(n) + 0.5) / n - 0.5, (np.arange(n) + 0.5) / n - 0.5)
    k = _TEXTURE_PERIODS
    if appearance == "Checker":
        first = (np.floor(u * k) + np.floor(v * k)) % 2 == 0
    elif appearance == "Stripes":
        first = np.floor((u + v) * k) % 2 == 0
    elif appearance == "Sectors":
        first = np.floor((np.arctan2(v, u) / (2 * math.pi) + 0.5) * 2 * k) % 2 == 0
    elif appearance == "Grid":
        # Thin lines of the second colour every 1/k diameter in both directions.
        first = np.minimum((u * k) % 1, (v * k) % 1) > 0.25
    elif appearance == "Halves":
        # Two halves and a dot off the centre: the dot shows a spin even along the dividing line.
        first = (u > 0) ^ ((u + 0.2) ** 2 + (v - 0.2) ** 2 < 0.1**2)
    else:
        # Dots on a (k - 1)-grid so one dot sits at the centre and the rest show the rotation.
        cell = 1.0 / (k - 1)
        du = (u / cell + 0.5) % 1 - 0.5
        dv = (v / cell + 0.5) % 1 - 0.5
        first = du**2 + dv**2 > 0.3**2
    colours = colours or TEXTURE_COLOURS[appearance]
    rgb = np.where(first[..., None], np.float32(colours[0]), np.float32(colours[1])).astype(np.float32)
    alpha = (u**2 + v**2 <= 0.25).astype(np.float32)
    rgb = cv2.resize(rgb * alpha[..., None], (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA)
    return rgb, alpha


def _fold(x: np.ndarray, length: float) -> np.ndarray:
    """Reflect positions into [0, length], i.e. bounce off both borders."""
    y = np.mod(x, 2 * length)
    return np.where(y > length, 2 * length - y, y)


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


@dataclass(frozen=True)
class ClipDraws:
    """The random values one clip is rendered from (:func:`_draw_clip`); the rest is deterministic.

    Attributes:
        pan_direction: the camera pan's direction, radians.
        pan_speed: the camera pan's speed, px/frame.
        direction: the axis of the object's own motion, radians.
        angle: the object's initial rotation, degrees.
        speed: px/frame of Slide, Shuttle, Circle and Zigzag, final px/frame of Accelerate, signed
            deg/frame of Spin and Wobble, Pulse's depth (the fraction of the diameter lost at its smallest).
        period, phase: the period and phase in frames of Shuttle, Circle, Zigzag, Pulse and Wobble (None
            for the other motions); Circle's period is one turn, its sign the sense of the turn.
        start: the object's unfolded start (x, y) in px, over a whole reflection period.
    """

    pan_direction: float
    pan_speed: float
    direction: float
    angle: float
    speed: float
    period: float | None
    phase: float | None
    start: np.ndarray

    @property
    def pan(self) -> np.ndarray:
        """The camera velocity (x, y) in px/frame."""
        return _unit(self.pan_direction) * self.pan_speed


def _draw_clip(p: SyntheticParams, motion: str, rng: np.random.Generator) -> ClipDraws:
    """Every random value of one clip of ``motion``, all from ``rng``, in the order the data was made with
    (another order would change every generated dataset)."""
    pan_direction, pan_speed = rng.uniform(0, 2 * math.pi), rng.uniform(0, p.camera_pan)
    direction = rng.uniform(0, 2 * math.pi)
    angle = rng.uniform(0, 360)
    speed_lo, speed_hi = p.speed_range
    period = phase = None
    if motion == "Slide":
        speed = rng.uniform(speed_lo, speed_hi)
    elif motion == "Shuttle":
        period = rng.uniform(*p.shuttle_period_range)
        phase = rng.uniform(0, period)
        speed = rng.uniform(speed_lo, speed_hi)
    elif motion == "Accelerate":
        speed = rng.uniform(speed_hi, 2 * speed_hi)
    elif motion == "Spin":
        speed = rng.choice((-1.0, 1.0)) * rng.uniform(*p.spin_range)
    else:  # OTHER_MOTIONS, drawn after every default motion's draws so that those stay as they were
        period = rng.uniform(*p.shuttle_period_range)
        phase = rng.uniform(0, period)
        if motion == "Circle":
            period *= 2 * rng.choice((-1.0, 1.0))
            speed = rng.uniform(speed_lo, speed_hi)
        elif motion == "Zigzag":
            speed = rng.uniform(speed_lo, speed_hi)
        elif motion == "Pulse":
            speed = rng.uniform(*_PULSE_DEPTH)
        else:  # Wobble
            speed = rng.choice((-1.0, 1.0)) * rng.uniform(*p.spin_range)
    room = np.array([p.width - p.object_size, p.height - p.object_size], dtype=np.float64)
    start = rng.uniform(0, 2 * room)
    return ClipDraws(pan_direction, pan_speed, direction, angle, speed, period, phase, start)


def _triangle(t: np.ndarray, period: float, phase: float) -> np.ndarray:
    """Triangle wave of slope +-1 and mean 0: reverses every half period."""
    return np.abs((t + phase) % period - period / 2) - period / 4


def _object_track(p: SyntheticParams, motion: str, draws: ClipDraws
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object displacement relative to the scene (T x 2, px), rotation angle (T, degrees) and scale
    (T, 1 = the disc's size) per frame."""
    t = np.arange(p.num_frames, dtype=np.float64)
    angle = np.full_like(t, draws.angle)
    scale = np.ones_like(t)
    along = np.zeros_like(t)
    axis = _unit(draws.direction)
    if motion == "Slide":
        along = draws.speed * t
    elif motion == "Shuttle":
        # constant speed, reversing every half period
        along = draws.speed * _triangle(t, draws.period, draws.phase)
    elif motion == "Accelerate":
        along = 0.5 * draws.speed / t[-1] * t**2
    elif motion == "Spin":
        angle += draws.speed * t
    elif motion == "Circle":
        # the signed period turns the velocity by 2 pi / period a frame; radius = speed / angular speed
        omega = 2 * math.pi / draws.period
        turn = omega * (t + draws.phase)
        radius = draws.speed / abs(omega)
        circle = radius * np.stack([np.cos(turn) - math.cos(omega * draws.phase),
                                    np.sin(turn) - math.sin(omega * draws.phase)], axis=1)
        return circle @ _rotation(draws.direction).T, angle, scale
    elif motion == "Zigzag":
        # as fast along the axis as across it, the crossing reversing every half period
        side = _unit(draws.direction + math.pi / 2)
        offset = draws.speed / math.sqrt(2) * (t[:, None] * axis + _triangle(t, draws.period, draws.phase)[:, None] * side)
        return offset, angle, scale
    elif motion == "Pulse":
        # the scale falls to 1 - depth and back, linearly: half a period each way
        scale = 1 - draws.speed * (0.5 - 2 * _triangle(t, draws.period, draws.phase) / draws.period)
    else:  # Wobble: Spin's angular speed, reversing every half period
        angle += draws.speed * _triangle(t, draws.period, draws.phase)
    return along[:, None] * axis, angle, scale


def _rotation(angle: float) -> np.ndarray:
    """The 2 x 2 matrix rotating a vector by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _render_clip(
    p: SyntheticParams, appearance: str, motion: str, background: np.ndarray, draws: ClipDraws
) -> list[np.ndarray]:
    """Render the RGB uint8 frames of one clip of ``appearance`` moving by ``motion`` as ``draws`` say."""
    h, w, size = p.height, p.width, p.object_size
    t = np.arange(p.num_frames, dtype=np.float64)

    # Scene content moves by +pan px/frame in the image; centring at mid-clip halves the margin needed.
    scene_shift = (t[:, None] - t[-1] / 2) * draws.pan
    offset, angle, scale = _object_track(p, motion, draws)
    # Object centre on screen: scene motion plus own motion, reflected into the frame. The unfolded start
    # is uniform over a full reflection period, so each frame's position is uniform for every class.
    room = np.array([w - size, h - size], dtype=np.float64)
    centre = size / 2 + _fold(draws.start + offset + scene_shift, room)

    sprite, alpha = _object_sprite(appearance, size, p.texture_colours)
    m = _pan_margin(p)
    flags = cv2.INTER_LINEAR
    frames = []
    for i in range(len(t)):
        # warpAffine maps source to destination coordinates: dst(x) = background(x + m - shift).
        to_frame = np.float64([[1, 0, scene_shift[i, 0] - m], [0, 1, scene_shift[i, 1] - m]])
        bg = cv2.warpAffine(background, to_frame, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        # Rotate the sprite about its own centre, then place that centre at the object centre.
        rot = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), float(angle[i]), float(scale[i]))
        rot[:, 2] += centre[i] - (size - 1) / 2 - 0.5
        obj = cv2.warpAffine(sprite, rot, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
        a = cv2.warpAffine(alpha, rot, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
        frames.append(np.clip(bg * (1 - a[..., None]) + obj + 0.5, 0, 255).astype(np.uint8))
    return frames


def _write_video(path: Path, frames_rgb: list[np.ndarray], fps: int, quality: int) -> None:
    """Write RGB frames as MJPG .avi via a temporary name, so a partial file never has the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # never another process's
    h, w = frames_rgb[0].shape[:2]
    # OpenCV's built-in MJPEG encoder: no FFmpeg needed, honours the quality, byte-identical across runs.
    writer = cv2.VideoWriter(str(tmp), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened() or not writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality):
        raise RuntimeError(f"cannot open an MJPG video writer for {tmp}")
    for frame in frames_rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    os.replace(tmp, path)


def _write_splits(folder: Path, classes: tuple[str, ...], groups_per_class: int, clips_per_group: int,
                  test_groups: int) -> None:
    """Write classInd.txt, trainlist01.txt (with 1-based labels) and testlist01.txt like UCF-101."""
    folder.mkdir(parents=True, exist_ok=True)
    first_test = groups_per_class - test_groups + 1
    train, test = [], []
    for label, name in enumerate(classes, start=1):
        for g in range(1, groups_per_class + 1):
            for c in range(1, clips_per_group + 1):
                rel = f"{name}/{video_name(name, g, c)}"
                if g >= first_test:
                    test.append(rel)
                else:
                    train.append(f"{rel} {label}")
    files = {
        "classInd.txt": [f"{label} {name}" for label, name in enumerate(classes, start=1)],
        "trainlist01.txt": train,
        "testlist01.txt": test,
    }
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines) + "\n")
