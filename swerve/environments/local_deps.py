"""Dependencies for the local backend: one virtualenv per wheelhouse, installed
offline from the same wheels the docker environment image uses, shared by every
local environment of that repository (each environment adds its own clone)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from swerve.errors import InfraError
from swerve.paths import cache_dir


def ensure_deps_venv(task, repo) -> Path:
    """Return the site-packages folder of a cached virtualenv holding the task's
    dependencies (not the project itself)."""
    from swerve.environments.wheelhouse import build_wheelhouse

    wheelhouse, requirements = build_wheelhouse(task, repo)
    key = hashlib.sha256(f"{wheelhouse}\n{sorted(requirements)}\n{sys.version}".encode()).hexdigest()[:16]
    final = cache_dir("local-venvs") / key
    site = final / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    if (final / ".complete").exists():
        return site
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    base_python = getattr(sys, "_base_executable", sys.executable)
    steps = [[base_python, "-m", "venv", str(staging)]]
    if requirements:
        steps.append(
            [str(staging / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
             "--find-links", str(wheelhouse), *requirements]
        )
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise InfraError(
                f"local environment for {task.instance_id}: installing dependencies failed: "
                f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            )
    # Only site-packages is used (through .pth files), so moving the finished venv is safe.
    try:
        os.rename(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if (final / ".complete").exists():
            return site
        raise InfraError(f"local environment for {task.instance_id}: could not place {final}")
    (final / ".complete").touch()
    return site
