"""Compare the settings a stored artefact was made with to the ones asked for now."""

from collections.abc import Mapping
from typing import Any


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
