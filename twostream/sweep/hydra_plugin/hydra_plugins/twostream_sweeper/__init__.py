"""twostream's Optuna sweeper under the name Hydra accepts: Hydra instantiates sweepers only from the
``hydra_plugins`` namespace package. The code is in :mod:`twostream.sweep.sweeper`."""

from twostream.sweep import sweeper as _sweeper


class TwostreamOptunaSweeper(_sweeper.OptunaSweeper):
    """:class:`twostream.sweep.sweeper.OptunaSweeper` (``hydra/sweeper=optuna``)."""
