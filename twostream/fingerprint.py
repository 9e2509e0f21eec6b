"""What a stored artefact records about how it was made, and how it is checked when read again.

Two records, one rule each:

- **Settings** (a fingerprint): the config an artefact's content depends on. The rule, for every
  artefact (the flow cache's :func:`twostream.cache.cache_fingerprint`, a checkpoint's
  :func:`twostream.train.stage.training_settings`): the artefact names the config entries it is
  made from, and each entry counts whole except its ``runtime`` sub-tree (how to compute: device,
  workers, compilation, amp), which never counts. :func:`counted` applies it; :func:`differences`
  compares a stored fingerprint with the one asked for.
- **Format version**: how the file itself is laid out. :class:`ArtefactFormat` stamps the current
  version on write and, on read, refuses a newer one or upgrades an older one through one explicit
  step per version (k -> k+1), or refuses it naming the file and the stage that writes a new one.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from twostream.errors import UserError

RUNTIME = "runtime"  # the sub-tree of a config entry that never counts in a fingerprint


def _without_runtime(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_runtime(v) for k, v in value.items() if k != RUNTIME}
    return value


def counted(cfg: DictConfig, entries: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint of the config ``entries`` an artefact is made from, by the one rule.

    ``entries`` maps each fingerprint key to a dotted config path (``"flow.params"``), or to a
    mapping of the same kind (a nested part of the fingerprint). Each entry counts whole, resolved,
    without its ``runtime`` sub-tree (at any depth); an entry the config lacks counts as None.
    """
    fingerprint: dict[str, Any] = {}
    for key, entry in entries.items():
        if isinstance(entry, Mapping):
            fingerprint[key] = counted(cfg, entry)
            continue
        value = OmegaConf.select(cfg, entry, default=None)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        fingerprint[key] = _without_runtime(value)
    return fingerprint


def differences(stored: Mapping[str, Any], wanted: Mapping[str, Any], holder: str, prefix: str = ""
                ) -> list[str]:
    """One line per differing (nested) key: ``key: <holder> has X, config asks for Y``."""
    lines = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines += differences(a, b, holder, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {holder} has {a!r}, config asks for {b!r}")
    return lines


class ArtefactFormatError(UserError, ValueError):
    """A stored artefact's format version is one this twostream cannot read (too new, or too old to upgrade)."""


class Outdated(Exception):  # noqa: N818  (raised by an upgrade step; ArtefactFormat.read names the file)
    """Raised by an upgrade step for a file of an old version that cannot be brought up to date."""


Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ArtefactFormat:
    """One kind of artefact's format version, and the steps that read its older versions.

    ``upgrades[k]`` turns a version-k state into version k+1 (or raises :class:`Outdated`);
    version 0 is a file written before the kind carried a version. ``fix`` is what writes a
    current one (``"rerun stage=train"``).
    """

    kind: str
    current: int
    fix: str
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)
    key: str = "format"

    def stamped(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """``state`` with the current version recorded under :attr:`key`."""
        return {**state, self.key: self.current}

    def read(self, state: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
        """``state`` as loaded from ``path`` brought to the current version, step by step.

        Raises :class:`ArtefactFormatError` naming ``path`` for a version newer than this code
        reads, or an older one that no step (or a step's :class:`Outdated`) can bring up to date.
        """
        state = dict(state)
        version = int(state.pop(self.key, 0))
        if version > self.current:
            raise ArtefactFormatError(
                f"{path}: {self.kind} format {version} was written by a newer twostream; this one reads "
                f"formats up to {self.current}. Upgrade twostream, or {self.fix} to write one this version reads.")
        while version < self.current:
            step = self.upgrades.get(version)
            try:
                if step is None:
                    raise Outdated(f"this twostream reads {self.kind} formats "
                                   f"{min(self.upgrades, default=self.current)} to {self.current}")
                state = step(state)
            except (Outdated, KeyError) as why:  # KeyError: a part the step needs is missing
                reason = f"it has no {why}" if isinstance(why, KeyError) else str(why)
                raise ArtefactFormatError(f"{path}: cannot read this {self.kind} of format {version} (an older "
                                          f"twostream): {reason}. {self.fix[:1].upper()}{self.fix[1:]} to "
                                          "write a current one.") from None
            version += 1
        return state
