"""Where swerve keeps its caches: $SWERVE_HOME, else ~/.cache/swerve."""

from __future__ import annotations

import os
from pathlib import Path


def swerve_home() -> Path:
    root = Path(os.environ.get("SWERVE_HOME") or Path.home() / ".cache" / "swerve")
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(name: str) -> Path:
    """A named cache folder under swerve_home(), created on first use."""
    path = swerve_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
