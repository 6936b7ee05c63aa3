"""The environment backends by name: `docker`, `local`, `scratch` (tests and quick experiments,
not isolated), `auto`, or a dotted path `module:Class`.

Every command and library call validates a backend here (`check_backend`), so an unknown
one is one clear error listing the known names before any task starts. A backend is a
class with `for_task(task, *, limits, run_id)` returning an Environment (see
swerve.environments.base); `register_backend(name, "module:Class")` adds a name, and any
`module:Class` path works without registering.
"""

from __future__ import annotations

import importlib
from typing import Any

from swerve.errors import SwerveError

AUTO = "auto"
_BACKENDS: dict[str, str] = {
    "docker": "swerve.environments.docker:DockerEnvironment",
    "local": "swerve.environments.local:LocalEnvironment",
    "scratch": "swerve.environments.scratch:ScratchEnvironment",
}


class UnknownBackend(SwerveError, ValueError):
    """A backend name or dotted path that does not name a usable backend."""


def known_backends() -> list[str]:
    """`auto` and the registered names, in the order shown to users."""
    return [AUTO, *_BACKENDS]


def register_backend(name: str, target: str) -> None:
    """Make `name` an alias of the backend class at `target` ("module:Class")."""
    if not name or ":" in name or name == AUTO:
        raise ValueError(f"backend name {name!r}: use a plain name other than {AUTO!r}")
    _BACKENDS[name] = target


def check_backend(name: str) -> str:
    """`name` unchanged when it names a backend (`auto`, a registered name, or an importable
    `module:Class` with `for_task`); otherwise UnknownBackend listing the known names."""
    if name == AUTO or name in _BACKENDS:
        return name
    if ":" in name:
        backend_class(name)
        return name
    raise UnknownBackend(f"unknown backend {name!r}; use one of {', '.join(known_backends())}, "
                         "or module:Class for your own backend")


def backend_class(name: str) -> Any:
    """The class behind a registered name or a `module:Class` path (not `auto`: resolve it first)."""
    target = _BACKENDS.get(name, name)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UnknownBackend(f"unknown backend {name!r}; use one of {', '.join(known_backends())}, "
                             "or module:Class for your own backend")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except ImportError as exc:
        raise UnknownBackend(f"backend {name!r}: cannot import {module_name!r} ({exc})") from None
    except AttributeError:
        raise UnknownBackend(f"backend {name!r}: {module_name!r} has no {attribute!r}") from None
    if not callable(getattr(found, "for_task", None)):
        raise UnknownBackend(f"backend {name!r}: {target} has no for_task(task, *, limits, run_id) "
                             "(see swerve.environments.base)")
    return found


def resolve_backend(name: str = AUTO) -> str:
    """The backend to use: `auto` becomes docker when a daemon answers, else local."""
    check_backend(name)
    if name != AUTO:
        return name
    from swerve.environments.docker import docker_available

    return "docker" if docker_available() else "local"
