"""Where the config tree is: conf/ at the top of a source checkout, twostream/conf in an installed wheel."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The folder holding config.yaml and the config groups."""
    installed = _PACKAGE / "conf"
    return installed if installed.is_dir() else _PACKAGE.parent / "conf"
