"""Search spaces written as Hydra sweep overrides, turned into Optuna distributions, and back.

In config or on the command line a searched key takes one of Hydra's sweep forms:

- ``choice(a, b, c)`` or ``a,b,c``  -> a categorical choice (numbers, strings, booleans, null);
- ``range(start, stop[, step])``    -> integers ``start, start+step, ... < stop`` (floats: a choice
  among the listed values);
- ``interval(low, high)``           -> a float in [low, high]; ``tag(log, interval(...))`` samples on a
  log scale, ``tag(int, interval(...))`` draws integers (both tags together: ``tag(int, log, ...)``).

Any other value (``key=value``) is fixed for every trial.
"""

import decimal
import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    Quote,
    QuotedString,
    RangeSweep,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

Choice = None | bool | int | float | str


def _choice_value(value: Any, line: str) -> Choice:
    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, decimal.Decimal):
        return float(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"search space {line!r}: Optuna can only choose among numbers, strings, booleans "
                     f"and null, not {value!r}")


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one parsed sweep override."""
    sweep, line = override.value(), override.input_line
    if override.value_type is not None and override.value_type.name == "GLOB_CHOICE_SWEEP":
        raise ValueError(f"search space {line!r}: glob() choices are not supported; list the options")
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution([_choice_value(v, line) for v in sweep.list])
    if isinstance(sweep, RangeSweep):
        values = [_choice_value(v, line) for v in override.sweep_iterator()]
        if not values:
            raise ValueError(f"search space {line!r}: the range is empty")
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)) and sweep.step > 0:
            return IntDistribution(values[0], values[-1], step=sweep.step)
        return CategoricalDistribution(values)
    if isinstance(sweep, IntervalSweep):
        log = "log" in sweep.tags
        if "int" in sweep.tags:
            return IntDistribution(round(sweep.start), round(sweep.end), log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise ValueError(f"search space {line!r}: not a sweep (choice, range or interval)")


def parse_search_space(lines: Iterable[str], parser: OverridesParser) -> tuple[dict[str, BaseDistribution],
                                                                             list[str]]:
    """Split ``key=value`` lines into the searched keys' distributions and the fixed overrides.

    A later line for the same key wins, so command-line arguments override the configured space.
    """
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in parser.parse_overrides(list(lines)):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line
    return space, list(fixed.values())


def format_value(value: Choice) -> str:
    """A sampled value as Hydra override syntax (strings quoted, so '10' stays a string)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return QuotedString(text=value, quote=Quote.single).with_quotes()


def trial_overrides(params: dict[str, Choice]) -> list[str]:
    """``key=value`` overrides that set a trial's sampled parameters."""
    return [f"{key}={format_value(value)}" for key, value in params.items()]


def grid_axes(space: Mapping[str, BaseDistribution]) -> list[list[Choice]] | None:
    """Each searched key's values (in the space's key order) when the space is finite; None when it is
    not (a float interval, a log-scaled integer)."""
    axes: list[list[Choice]] = []
    for dist in space.values():
        if isinstance(dist, CategoricalDistribution):
            axes.append(list(dist.choices))
        elif isinstance(dist, IntDistribution) and not dist.log:
            axes.append(list(range(dist.low, dist.high + 1, dist.step)))
        else:
            return None
    return axes


ENUMERATE_UP_TO = 100_000  # larger grids are drawn from, not listed


def pick_untried(axes: Sequence[Sequence[Choice]], tried: Set[tuple], rng: random.Random) -> tuple | None:
    """A uniformly drawn combination of the grid ``axes`` that is not in ``tried``; None when all are."""
    size = math.prod(len(axis) for axis in axes)
    values = [set(axis) for axis in axes]
    on_grid = sum(all(value in axis for value, axis in zip(combo, values, strict=True)) for combo in tried)
    if on_grid >= size:  # (trials of an earlier, other space may hold values off this grid)
        return None
    if size <= ENUMERATE_UP_TO:
        untried = [combo for combo in itertools.product(*axes) if combo not in tried]
        return rng.choice(untried) if untried else None
    while True:  # a large grid: the study's trials are a small part of it, so few draws are rejected
        combo = tuple(rng.choice(axis) for axis in axes)
        if combo not in tried:
            return combo
