"""Everything a run will need, checked before it does any work.

:func:`check_config` looks at the composed config alone: each value's type and range, choices
against what exists (estimators, stacking modes, models, codecs, stages), and the constraints
between keys (bi-directional stacks need backward flow, crops must fit the frames and the net,
a flow stack needs L+1 frames). :func:`check_environment` looks at what the stages to run will
read: dataset folders and split lists, a GPU that is asked for, weights files, and the outputs of
earlier stages when one stage runs alone. Both raise one :class:`~twostream.errors.ConfigError`
that names every problem found, with the key, its value and what is expected.

One function, not a typed schema: most rules relate several keys (or the stage to run), which a
per-key schema cannot say, and the defaults stay in conf/ only.
"""

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from twostream.cache import open_cache
from twostream.cache.codecs import CODECS
from twostream.cache.extract import parse_shard
from twostream.cache.frames import FrameSelection
from twostream.cache.store import CacheMismatchError
from twostream.configs import config_dir
from twostream.data.catalog import FORMATS
from twostream.data.splits import SPLITS
from twostream.data.synthetic import SyntheticParams
from twostream.devices import resolve_device
from twostream.errors import ConfigError, UserError
from twostream.flow import ESTIMATORS, SIZES_OWN_BATCHES, estimator_kwargs, get_estimator
from twostream.fusion import C_SEARCHES
from twostream.inputs.stacking import STACKING_MODES
from twostream.models import TORCHVISION_ARCHS
from twostream.models.cnn_m import CNNM2048
from twostream.rundir import RunDir
from twostream.runlog import TRACKING_MODES

STAGES = ("extract", "train", "test", "fuse")
INPUTS = ("rgb", "flow")
TRAINABLE = ("all", "last")
ARCHS = ("cnn_m_2048", *TORCHVISION_ARCHS)
DIST_BACKENDS = ("auto", "nccl", "gloo")
TRAIN_KEEP = ("last", "best_val")
TEST_CROPS = (1, 10)
SVM_FIT_ON = ("auto", "train", "val")
CODEC_LEVELS = {"jpeg": (1, 100), "zstd": (1, 22)}
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def stages_to_run(cfg: DictConfig) -> tuple[str, ...]:
    """The stages ``cfg.stage`` names, in order (``all``: every stage)."""
    return STAGES if cfg.stage == "all" else (cfg.stage,)


class _Problems:
    """Collects ``key=value: what is expected`` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, key: str, value: Any, expected: str) -> None:
        self.lines.append(f"{key}={_show(value)}: {expected}")

    def note(self, key: str, problem: str) -> None:
        """A problem of a whole node (its own message says which value)."""
        self.lines.append(f"{key}: {problem}")

    def need(self, ok: bool, key: str, value: Any, expected: str) -> bool:
        if not ok:
            self.add(key, value, expected)
        return ok

    def raise_if_any(self, what: str) -> None:
        if self.lines:
            raise ConfigError(f"{what} ({len(self.lines)} problem{'s' * (len(self.lines) > 1)}):\n  "
                              + "\n  ".join(self.lines))

    # -- typed values ------------------------------------------------------------------------
    def integer(self, node: Mapping[str, Any], key: str, prefix: str, low: int | None = None,
                high: int | None = None) -> bool:
        value = node.get(key)
        ok = _is_int(value) and (low is None or value >= low) and (high is None or value <= high)
        return self.need(ok, prefix + key, value, "an integer" + _range(low, high))

    def number(self, node: Mapping[str, Any], key: str, prefix: str, check: Callable[[float], bool],
               expected: str) -> bool:
        value = node.get(key)
        ok = _is_number(value) and check(value)
        return self.need(ok, prefix + key, value, f"a number {expected}")

    def boolean(self, node: Mapping[str, Any], key: str, prefix: str) -> bool:
        value = node.get(key)
        return self.need(isinstance(value, bool), prefix + key, value, "true or false")

    def choice(self, node: Mapping[str, Any], key: str, prefix: str, allowed: Sequence[Any]) -> bool:
        value = node.get(key)
        ok = value in allowed and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in allowed))
        return self.need(ok, prefix + key, value, "one of " + ", ".join(_show(a) for a in allowed))


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    return f" >= {low}" if low is not None else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


# ---------------------------------------------------------------- the config alone


def check_config(cfg: DictConfig) -> None:
    """Raise one ConfigError naming every value of ``cfg`` that cannot work (see the module doc)."""
    problems = _Problems()
    if not problems.choice(cfg, "stage", "", ("all", *STAGES)):
        problems.raise_if_any("the config cannot run")
    problems.need(isinstance(cfg.device, str) and bool(_DEVICE.match(cfg.device)), "device", cfg.device,
                  "auto, cpu, cuda or cuda:N")
    problems.integer(cfg, "seed", "", low=0)
    problems.boolean(cfg, "progress", "")
    problems.boolean(cfg, "debug", "")
    _check_dataset(problems, cfg.dataset, "dataset.")
    _check_flow(problems, _container(cfg.flow))
    _check_cache(problems, _container(cfg.cache), _container(cfg.extract), cfg.test.get("num_positions"))
    _check_model(problems, _container(cfg.model))
    streams = _container(cfg.streams)
    train = _container(cfg.train)
    _check_train(problems, train)
    if train.get("keep") == "best_val":
        problems.need(cfg.dataset.get("validation") is not None, "dataset.validation", None,
                      "a validation split with train.keep=best_val (the best epoch is chosen on it)")
    _check_streams(problems, streams, cfg)
    if {"train", "test"} & set(stages_to_run(cfg)):  # crops and stacks matter from training on
        _check_frames(problems, cfg, streams, train)
    test = _container(cfg.test)
    problems.integer(test, "num_positions", "test.", low=1)
    problems.choice(test, "crops", "test.", TEST_CROPS)
    problems.integer(test, "batch_size", "test.", low=1)
    svm = _container(cfg.fusion.svm)
    grid = svm.get("C_grid")
    problems.need(isinstance(grid, list) and bool(grid) and all(_is_number(c) and c > 0 for c in grid),
                  "fusion.svm.C_grid", grid, "a non-empty list of numbers > 0")
    problems.choice(svm, "fit_on", "fusion.svm.", SVM_FIT_ON)
    problems.choice(svm, "C_search", "fusion.svm.", C_SEARCHES)
    problems.integer(svm, "cv_folds", "fusion.svm.", low=2)
    problems.integer(svm, "max_iter", "fusion.svm.", low=1)
    problems.need(_is_number(svm.get("tol")) and svm.get("tol") > 0, "fusion.svm.tol", svm.get("tol"), "a number > 0")
    problems.choice(cfg.tracking, "mode", "tracking.", TRACKING_MODES)
    problems.integer(cfg.tracking, "flow_samples", "tracking.", low=0)
    problems.raise_if_any("the config cannot run")


# Keys the stages read that the config files leave out: adding one with +key=value is deliberate.
OPTIONAL_KEYS = ("trial", "flow.runtime", "tracking.entity", "dataset.merge_labels", "dataset.short_side")


def check_added_keys(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse every ``+key=value`` of the command line that adds a key no stage reads (a typo such as
    ``+train.crop_szie=56``, which Hydra's own hint for an unknown key suggests), naming the closest
    known key. Config groups (``+experiment=NAME``), Hydra's own keys, :data:`OPTIONAL_KEYS` and
    ``++key=value`` (force-add: the user's explicit choice) pass."""
    problems = _Problems()
    known = [k for k in _flat_keys(OmegaConf.to_container(cfg, resolve=False))
             if not any(k == o.lstrip("+").split("=", 1)[0] for o in overrides)]
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if (not override.is_add() or override.package is not None or key.split(".")[0] == "hydra"
                or (config_dir() / key).is_dir() or any(key == k or key.startswith(k + ".") for k in OPTIONAL_KEYS)):
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}=...? " if close else ""
        problems.note(f"+{key}", f"no such key in the config, so nothing would read it; {hint}"
                      "(python -m twostream --cfg job lists the keys; ++key=value adds one anyway)")
    problems.raise_if_any("the config cannot run")


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix[:-1]]
    return [k for key, value in node.items() for k in _flat_keys(value, f"{prefix}{key}.")]


def _check_dataset(problems: _Problems, dataset: DictConfig, prefix: str) -> None:
    if not problems.choice(dataset, "format", prefix, FORMATS):
        return
    for key in ("root", "video_root", "splits_dir"):
        if OmegaConf.is_missing(dataset, key):  # a missing value is not "in" a DictConfig
            problems.add(prefix + key, "???", "not set: give the dataset's folder, e.g. "
                         f"{prefix}{key}=/data/{dataset.get('name', 'videos')}")
    validation = dataset.get("validation")
    if validation is not None:
        problems.number(validation, "fraction", prefix + "validation.", lambda v: 0 < v < 1,
                        "between 0 and 1 (exclusive), or dataset.validation=null for no validation split")
        problems.integer(validation, "seed", prefix + "validation.", low=0)
    if dataset.format == "multitask":
        tasks = dataset.get("tasks") or {}
        if problems.need(bool(tasks), prefix + "tasks", None, "at least one dataset"):
            problems.choice(dataset, "evaluate", prefix, list(tasks))
            for name in tasks:
                _check_dataset(problems, tasks[name], f"{prefix}tasks.{name}.")
        return
    if dataset.format in ("ucf101", "hmdb51") or dataset.format == "folder" and "split" in dataset:
        problems.choice(dataset, "split", prefix, SPLITS)
    if dataset.format == "folder":
        problems.number(dataset, "test_fraction", prefix, lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")
    if "short_side" in dataset:
        value = dataset.short_side
        problems.need(value is None or _is_int(value) and value >= 1, prefix + "short_side", value,
                      "null (keep the videos' size) or an integer >= 1")
    if dataset.get("generator") is not None:
        try:
            SyntheticParams(**_container(dataset.generator))
        except (UserError, TypeError, ValueError) as error:
            problems.note(prefix + "generator", str(error))


def _check_flow(problems: _Problems, flow: dict[str, Any]) -> None:
    if not problems.choice(flow, "name", "flow.", sorted(ESTIMATORS)):
        return
    if flow["name"] in SIZES_OWN_BATCHES:
        problems.need(flow.get("batch_size") == "auto" or (_is_int(flow.get("batch_size")) and flow["batch_size"] >= 1),
                      "flow.batch_size", flow.get("batch_size"), "auto or an integer >= 1")
    else:
        problems.integer(flow, "batch_size", "flow.", low=1)


def _check_cache(problems: _Problems, cache: dict[str, Any], extract: dict[str, Any], test_positions: Any) -> None:
    problems.number(cache, "bound", "cache.", lambda v: v > 0, "> 0 (pixels)")
    for key in ("backward", "rebuild", "in_memory"):
        problems.boolean(cache, key, "cache.")
    for key in ("flow_codec", "frames_codec"):
        codec = cache.get(key) or {}
        if problems.choice(codec, "name", f"cache.{key}.", CODECS):
            problems.integer(codec, "level", f"cache.{key}.", *CODEC_LEVELS[codec["name"]])
    for key in ("flows_per_chunk", "frames_per_chunk"):
        problems.integer(cache, key, "cache.", low=1)
    frames = cache.get("frames")
    if frames is not None and not isinstance(frames, Mapping):
        problems.add("cache.frames", frames, "a mapping with keep (all | every | protocol), every, train_frames")
    else:
        try:
            FrameSelection.from_config(frames, test_positions=test_positions if _is_int(test_positions) and test_positions >= 1
                                        else 1)  # a bad test.num_positions is reported on its own
        except ConfigError as error:
            problems.note("cache.frames", str(error))
    try:
        shard = parse_shard(extract.get("shard"))
    except UserError:
        problems.add("extract.shard", extract.get("shard"), "null or I/N with 0 <= I < N (e.g. 0/4)")
        shard = None
    if shard is not None and cache.get("rebuild") is True:
        problems.add("cache.rebuild", True, "not with extract.shard (shards would delete each other's work): "
                     "rebuild once without a shard, then start the shards")
    problems.boolean(extract, "strict", "extract.")
    problems.integer(extract, "num_workers", "extract.", low=0)
    problems.integer(extract, "prefetch", "extract.", low=0)
    fraction = extract.get("min_decoded_fraction")
    problems.need(fraction is None or _is_number(fraction) and 0 < fraction <= 1, "extract.min_decoded_fraction",
                  fraction, "null or a number in (0, 1]")


def _check_model(problems: _Problems, model: dict[str, Any]) -> None:
    if not problems.choice(model, "arch", "model.", ARCHS) or model["arch"] != "cnn_m_2048":
        return
    for key, count in (("conv_widths", 5), ("fc_widths", 2)):
        widths = model.get(key)
        problems.need(isinstance(widths, list) and len(widths) == count and all(_is_int(w) and w >= 1 for w in widths),
                      f"model.{key}", widths, f"a list of {count} integers >= 1")
    problems.choice(model, "norm", "model.", ("lrn", "batch"))


def _check_train(problems: _Problems, train: dict[str, Any]) -> None:
    for key in ("batch_size", "crop_size", "samples_per_video", "accumulate"):
        problems.integer(train, key, "train.", low=1)
    problems.number(train, "momentum", "train.", lambda v: 0 <= v < 1, "in [0, 1)")
    problems.number(train, "weight_decay", "train.", lambda v: v >= 0, ">= 0")
    problems.number(train, "lr_gamma", "train.", lambda v: 0 < v <= 1, "in (0, 1]")
    decays = train.get("lr_decay_at")
    problems.need(isinstance(decays, list) and all(_is_number(f) and 0 < f <= 1 for f in decays),
                  "train.lr_decay_at", decays, "a list of fractions of the epochs, each in (0, 1]")
    scales = train.get("multiscale")
    problems.need(scales is None or isinstance(scales, list) and bool(scales)
                  and all(_is_number(s) and 0 < s <= 1 for s in scales),
                  "train.multiscale", scales, "null or a non-empty list of fractions in (0, 1]")
    runtime = train.get("runtime") or {}
    for key in ("resume", "amp", "channels_last", "validate"):
        problems.boolean(runtime, key, "train.runtime.")
    problems.integer(runtime, "num_workers", "train.runtime.", low=0)
    problems.integer(runtime, "val_positions", "train.runtime.", low=1)
    problems.choice(runtime, "dist_backend", "train.runtime.", DIST_BACKENDS)
    if problems.choice(train, "keep", "train.", TRAIN_KEEP) and train["keep"] == "best_val":
        problems.need(runtime.get("validate") is True, "train.runtime.validate", runtime.get("validate"),
                      "true with train.keep=best_val (the best epoch is chosen on the per-epoch validation)")


def _check_streams(problems: _Problems, streams: dict[str, Any], cfg: DictConfig) -> None:
    if not problems.need(bool(streams), "streams", None, "at least one stream (spatial and/or temporal)"):
        return
    for name, stream in streams.items():
        prefix = f"streams.{name}."
        problems.number(stream, "dropout", prefix, lambda v: 0 <= v < 1, "in [0, 1)")
        problems.number(stream, "lr", prefix, lambda v: v > 0, "> 0")
        problems.integer(stream, "epochs", prefix, low=1)
        if problems.choice(stream, "trainable", prefix, TRAINABLE) and stream["trainable"] == "last":
            problems.need(bool(cfg.model.get("pretrained")), prefix + "trainable", "last",
                          "needs model.pretrained (weights for the layers that do not train)")
        if not problems.choice(stream, "input", prefix, INPUTS) or stream["input"] != "flow":
            continue
        problems.choice(stream, "stacking", prefix, STACKING_MODES)
        problems.boolean(stream, "mean_subtraction", prefix)
        good_l = problems.integer(stream, "L", prefix, low=1)
        if problems.boolean(stream, "bidirectional", prefix) and stream["bidirectional"]:
            if good_l and stream["L"] % 2:
                problems.add(prefix + "L", stream["L"], "an even number with bidirectional=true "
                             "(L/2 backward and L/2 forward fields)")
            if cfg.cache.backward is not True:
                problems.add(prefix + "bidirectional", True, "needs backward flow in the cache: add cache.backward=true")


def _check_frames(problems: _Problems, cfg: DictConfig, streams: dict[str, Any], train: dict[str, Any]) -> None:
    """Crops against the frames and the net, flow stacks against the videos' length, where known."""
    crop = train.get("crop_size")
    if not _is_int(crop) or crop < 1:
        return
    generator = cfg.dataset.get("generator")
    if generator is not None:  # the synthetic set: its size and length are config values
        if _is_int(generator.get("height")) and _is_int(generator.get("width")):
            side = min(generator.height, generator.width)
            problems.need(crop <= side, "train.crop_size", crop,
                          f"at most the synthetic frames' {generator.width}x{generator.height} (e.g. "
                          f"+experiment=quickstart, which crops {min(56, side)})")
        frames = generator.get("num_frames")
        for name, stream in streams.items():
            length = stream.get("L")
            if stream.get("input") == "flow" and _is_int(length) and _is_int(frames) and length + 1 > frames:
                problems.add(f"streams.{name}.L", length, f"at most {frames - 1}: a stack of L fields needs L+1 "
                             f"frames and dataset.generator.num_frames={frames}")
    elif _is_int(cfg.dataset.get("short_side")):
        problems.need(crop <= cfg.dataset.short_side, "train.crop_size", crop,
                      f"at most dataset.short_side={cfg.dataset.short_side} (the frames' shorter side)")
    if cfg.model.get("arch") == "cnn_m_2048" and not _cnn_m_fits(crop):
        smallest = next(s for s in range(crop, 1024) if _cnn_m_fits(s))
        problems.add("train.crop_size", crop, f"at least {smallest} for model.arch=cnn_m_2048 (smaller crops "
                     "leave its conv5 map empty)")


def _cnn_m_fits(size: int) -> bool:
    """Whether CNN-M-2048's layers leave a non-empty map for inputs of ``size`` pixels."""
    try:
        CNNM2048(1, input_size=size, conv_widths=[1] * 5, fc_widths=[1, 1], dropout=0.0, conv2_lrn=False,
                 norm="batch")
    except RuntimeError:
        return False
    return True


# ---------------------------------------------------------------- what the stages will read


def check_environment(cfg: DictConfig) -> None:
    """Raise one ConfigError naming every file, folder or device the stages to run need and lack."""
    problems = _Problems()
    stages = stages_to_run(cfg)
    for key, name in (("device", cfg.device), ("flow.runtime.device", (cfg.flow.get("runtime") or {}).get("device"))):
        if name is not None:
            try:
                resolve_device(name, key=key)
            except RuntimeError as error:
                problems.add(key, name, str(error).split(" but ", 1)[-1])
    _check_dataset_files(problems, cfg.dataset, "dataset.")
    pretrained = cfg.model.get("pretrained")
    if isinstance(pretrained, str) and (pretrained.endswith((".pt", ".pth")) or "/" in pretrained):
        problems.need(Path(pretrained).expanduser().is_file(), "model.pretrained", pretrained, "no such weights file")
    if "extract" in stages:
        try:  # the estimator, built once: its parameters, and a GPU it needs
            get_estimator(cfg.flow.name, **estimator_kwargs(_container(cfg.flow)))
        except Exception as error:  # noqa: BLE001  any estimator's own refusal, said as it says it
            problems.note(f"flow.params (flow={cfg.flow.name})", str(error))
    elif stages == ("train",):
        problems.need((Path(cfg.cache.path) / "zarr.json").is_file(), "cache.path", cfg.cache.path,
                      "no flow cache there: run stage=extract first")
    elif stages == ("test",):
        for stream in cfg.streams:
            path = RunDir(cfg.paths.output_dir).checkpoint(stream)
            problems.need(path.is_file(), "stage", "test", f"no trained {stream} model {path}: run stage=train first")
    elif stages == ("fuse",):
        for stream in cfg.streams:
            for subset in ("train", "test"):
                path = RunDir(cfg.paths.output_dir).scores(stream, subset)
                problems.need(path.is_file(), "stage", "fuse", f"no score file {path}: run stage=test first")
    if stages != ("fuse",) and not ("extract" in stages and cfg.cache.rebuild) \
            and (Path(cfg.cache.path) / "zarr.json").is_file():
        try:  # a cache made with other settings (flow, cache.frames): refused before the dataset is even read
            open_cache(cfg)
        except CacheMismatchError as error:
            problems.note("cache.path", str(error))
    problems.raise_if_any("the run cannot start")


def _check_dataset_files(problems: _Problems, dataset: DictConfig, prefix: str) -> None:
    if dataset.get("format") == "multitask":
        for name in dataset.get("tasks") or {}:
            _check_dataset_files(problems, dataset.tasks[name], f"{prefix}tasks.{name}.")
        return
    if dataset.get("generator") is not None:
        return  # generated on the first run
    keys = ("root", "video_root") + (("splits_dir",) if dataset.get("format") != "folder" else ())
    for key in keys:
        if key == "video_root" and str(dataset.get("video_root")) == str(dataset.get("root")):
            continue  # one folder, one problem
        if key in dataset:  # set (check_config has refused missing ones)
            folder = Path(str(dataset[key]))
            problems.need(folder.is_dir(), prefix + key, str(folder), "no such folder")

