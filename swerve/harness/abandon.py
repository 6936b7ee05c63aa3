"""Abandoning in-flight work on an interrupt: close environments now, in parallel,
without waiting for the threads that use them, and remove any container this
process started for the run that no environment object knows about yet (one that
was being created when the signal came)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)


def close_in_parallel(envs: Iterable, wait_s: float = 5.0) -> None:
    """Close each environment in its own daemon thread; return once all are closed
    or `wait_s` has passed, whichever comes first."""
    closers = [threading.Thread(target=_close_quietly, args=(env,), name="swerve-abandon", daemon=True)
               for env in envs]
    for closer in closers:
        closer.start()
    deadline = time.monotonic() + wait_s
    for closer in closers:
        closer.join(timeout=max(0.0, deadline - time.monotonic()))


def remove_own_containers(run_id: str) -> list[str]:
    """Remove the containers labelled with `run_id` and owned by this process (its pid,
    host and PID namespace). Only when the docker backend is in use here (its module
    imported); best effort."""
    docker_backend = sys.modules.get("swerve.environments.docker")
    if docker_backend is None:
        return []
    try:
        client = docker_backend.docker_client()
        labels = [f"{docker_backend.LABEL_RUN}={run_id}",
                  *(f"{key}={value}" for key, value in docker_backend.owner_labels().items())]
        removed = []
        for container in client.containers.list(all=True, sparse=True, filters={"label": labels}):
            try:
                container.remove(force=True, v=True)
            except Exception:  # removed meanwhile by its own close()
                continue
            removed.append((container.attrs.get("Names") or [container.id])[0].lstrip("/"))
        return removed
    except Exception as exc:
        log.warning("could not remove the containers of %s: %s", run_id, exc)
        return []


def _close_quietly(env) -> None:
    try:
        env.close()
    except Exception:
        pass



def reap_orphaned_containers(run_id: str, backend: str) -> list[str]:
    """Remove containers of this run whose owning process is gone (a killed earlier run on
    this host and in this PID namespace: see environments.docker.is_orphan)."""
    if backend == "local":
        return []
    try:
        from swerve.environments.docker import docker_available, prune_containers

        if not docker_available():
            return []
        removed = prune_containers(run_id=run_id, orphans_only=True)
    except Exception as exc:
        log.warning("could not remove leftover containers of %s: %s", run_id, exc)
        return []
    if removed:
        log.info("removed %d container(s) left by an earlier run of %s", len(removed), run_id)
    return removed
