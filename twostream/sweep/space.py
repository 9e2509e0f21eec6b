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
from collections.abc import Iterable, Mapping
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


def combinations(space: Mapping[str, BaseDistribution]) -> int | None:
    """How many parameter combinations a space holds; None when it is not finite (a float interval)."""
    count = 1
    for dist in space.values():
        if isinstance(dist, CategoricalDistribution):
            count *= len(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            count *= (dist.high - dist.low) // dist.step + 1
        else:
            return None
    return count
