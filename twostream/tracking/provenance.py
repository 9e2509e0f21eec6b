"""What a run's numbers depend on beyond its config: the code's git commit and the flow cache's identity."""

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_GIT_TIMEOUT_S = 10


def git_state(path: Path = _PACKAGE_DIR) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (the twostream sources by default).

    Both are None where there is no checkout (an installed wheel) or no git program.
    """
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True,
                                  timeout=_GIT_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def fingerprint_id(fingerprint: Mapping[str, Any]) -> str:
    """A short stable hash of a cache fingerprint, to group runs by the flow they were trained on."""
    return hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]


def run_provenance(cache_fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """The ``provenance`` entry every W&B run's config carries: git state and cache fingerprint."""
    return {"git": git_state(), "cache_fingerprint": dict(cache_fingerprint),
            "cache_fingerprint_id": fingerprint_id(cache_fingerprint)}
