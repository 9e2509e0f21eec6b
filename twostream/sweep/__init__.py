"""Optuna studies as Hydra multiruns: ``python -m twostream -m +experiment=sweep_temporal``.

- :mod:`twostream.sweep.sweeper`: the Hydra sweeper (ask a batch of trials, launch them as Hydra
  jobs, tell the study their objective);
- :mod:`twostream.sweep.space`: search spaces written as Hydra sweep overrides;
- :mod:`twostream.sweep.study`: the storage (a journal file or an RDB URL) and the
  :class:`~twostream.sweep.study.TrialReporter` through which a trial's epochs reach the pruner.

Hydra only instantiates sweepers defined in the ``hydra_plugins`` namespace package; ours is
``hydra_plugins.twostream_sweeper`` (in ``twostream/sweep/hydra_plugin/``). An installed
twostream makes it importable in every process; :func:`enable_hydra_plugin` registers it with
Hydra, which does not find it by itself under an editable install, and makes it importable from a
plain source checkout.
"""

import importlib
import sys
from pathlib import Path

from hydra.core.plugins import Plugins

__all__ = ["enable_hydra_plugin"]

PLUGIN_MODULE = "hydra_plugins.twostream_sweeper"
PLUGIN_ROOT = Path(__file__).resolve().parent / "hydra_plugin"


def enable_hydra_plugin() -> None:
    """Make ``hydra/sweeper=optuna`` usable: import our plugin module and register its sweeper."""
    try:
        plugin = importlib.import_module(PLUGIN_MODULE)
    except ModuleNotFoundError:
        sys.path.append(str(PLUGIN_ROOT))  # a source checkout that pip did not install
        plugin = importlib.import_module(PLUGIN_MODULE)
    Plugins.instance().register(plugin.TwostreamOptunaSweeper)
