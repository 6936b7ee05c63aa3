"""How the task factory's environments start their test runs warm.

Each environment gets a sealed bytecode cache (swerve.harness.bytecode_cache) and a pytest
server (swerve.harness.pytest_server) that forks every run from a process that imported
pytest once. Their life cycle:

1. `open_warm_runs`: the cache opened, then the server started on it (its children write
   the cache until it is sealed);
2. the first runs fill the cache: the baseline and the call map in the first environment,
   one whole-suite run in the others (`warm_up`);
3. `settle_warm_runs`: the cache sealed, the environment reset. A cache that cannot be
   sealed is removed, and a server started on it is replaced by one without it.

Either part is left out where the environment cannot have it ('' and None): runs then
compile what they import, or start their own interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass

from swerve.harness.bytecode_cache import open_bytecode_cache, seal_bytecode_cache
from swerve.harness.hidden_tests import open_pytest_server, run_pytest_on
from swerve.harness.pytest_server import PytestServer, stop_pytest_server


@dataclass(frozen=True)
class WarmRuns:
    """How one environment's test runs start: reading its bytecode cache ('' for none), in
    children of its pytest server (None: a new interpreter for each run)."""

    bytecode_cache: str = ""
    server: PytestServer | None = None


def open_warm_runs(env, task, *, serve: bool = True, cache: bool = True) -> WarmRuns:
    """The cache opened (with `cache`) and the server started on it (with `serve`)."""
    folder = open_bytecode_cache(env) if cache else ""
    return WarmRuns(folder, open_pytest_server(env, task, folder) if serve else None)


def settle_warm_runs(env, task, opened: WarmRuns) -> WarmRuns:
    """After the first runs: the cache sealed, the environment reset."""
    sealed = seal_bytecode_cache(env, opened.bytecode_cache)
    server = opened.server
    if server is not None and opened.bytecode_cache and not sealed:  # its children would write the cache
        stop_pytest_server(env, server)
        server = open_pytest_server(env, task, "")
    env.reset()
    return WarmRuns(sealed, server)


def warm_up(env, task, *, timeout: float, serve: bool = True, cache: bool = True) -> WarmRuns:
    """A fresh environment made warm: opened, one whole-suite run to fill the cache, settled."""
    opened = open_warm_runs(env, task, serve=serve, cache=cache)
    if opened.bytecode_cache:
        run_pytest_on(env, task, [], timeout=timeout, bytecode_cache=opened.bytecode_cache, server=opened.server)
    return settle_warm_runs(env, task, opened)
