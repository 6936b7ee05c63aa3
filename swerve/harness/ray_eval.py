"""Grade instances on a Ray cluster (`swerve eval --ray ADDRESS|auto|local`).

The driver keeps the run: it decides what to grade (resume by patch hash), retries
infra failures, writes every file atomically into the run directory, and writes the
summary. Only the grading moves: each instance becomes one Ray task on whichever
node Ray picks (spread over the cluster), graded there by `evaluate_instance` with
that node's own Docker daemon and image cache, into a scratch folder. The task sends
back plain data (the grade and the scratch files' text), so a Ray run writes exactly
the layout a local run does. swerve must be installed on every node.
"""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swerve.errors import InfraError, SwerveError
from swerve.fileio import atomic_write_text
from swerve.harness.evaluate import EvaluationStopped, evaluate_instance
from swerve.schema import Grade, Prediction, Task

RAY_MISSING = "--ray needs Ray on this machine: pip install 'swerve[ray]'"
_PROBE_TIMEOUT_S = 5.0
_POLL_S = 0.5
_CANCEL_GRACE_S = 30.0


class RayUnavailable(SwerveError):
    """Ray is not installed, or no Ray cluster answers at the given address."""


def import_ray():
    """`ray`, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(RAY_MISSING) from None
    return ray


def ray_node_id() -> str:
    """The Ray node this code runs on (tells apart nodes, hence Docker daemons)."""
    return import_ray().get_runtime_context().get_node_id()


def _bootstrap_address(address: str) -> str | None:
    """HOST:PORT that `ray.init(address)` will dial, when it can be known up front."""
    if address.startswith("ray://"):
        return address[len("ray://"):].split("/", 1)[0]
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:
            return None
        try:
            return canonicalize_bootstrap_address("auto")
        except Exception:
            return None
    return address


def _probe(address: str) -> None:
    """Fail fast on an address nothing listens on (`ray.init` retries for minutes)."""
    target = _bootstrap_address(address)
    if not target or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise RayUnavailable(
            f"--ray {address}: no Ray cluster answers at {target} ({exc}); start one with `ray start --head` "
            "and pass its address (HOST:6379, ray://HOST:10001, or auto on a cluster node), or use --ray local"
        ) from None


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` ('auto', HOST:PORT, ray://HOST:PORT), or start
    a private one on this machine ('local'). An existing connection in this process is
    reused as is. Returns whether this call connected (and so should disconnect)."""
    import logging

    ray = import_ray()
    if ray.is_initialized():
        return False
    if address != "local":
        _probe(address)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address == "local":
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RayUnavailable(
            f"--ray {address}: could not join a Ray cluster ({reason}); start one with `ray start --head` "
            "and pass its address (HOST:6379, ray://HOST:10001, or auto on a cluster node), or use --ray local"
        ) from None
    return True


def _grade_on_node(task: dict, prediction: dict, options: dict) -> dict:
    """The Ray task: grade one prediction on this node into a scratch folder and send
    back the outcome and the folder's files. Errors come back as data, never raised,
    so the driver can tell infra (retried) from harness bugs."""
    node = {"ray_node": ray_node_id(), "host": socket.gethostname()}
    with tempfile.TemporaryDirectory(prefix="swerve-ray-") as scratch:
        folder = Path(scratch)
        outcome: dict[str, Any] = {"node": node}
        try:
            grade = evaluate_instance(Task.model_validate(task), Prediction.model_validate(prediction),
                                      instance_dir=folder, **options)
            grade.environment.update(node)
            outcome["grade"] = grade.model_dump(mode="json")
        except InfraError as exc:
            outcome["infra_error"] = f"{exc} (on Ray node {node['host']})"
        except Exception as exc:
            outcome["harness_error"] = f"{type(exc).__name__}: {exc} (on Ray node {node['host']})"
        outcome["files"] = {path.name: path.read_text(encoding="utf-8", errors="replace")
                            for path in sorted(folder.iterdir()) if path.is_file()}
        return outcome


class RemoteHarnessError(RuntimeError):
    """The grading code itself failed on a Ray node (a bug, not infra, not the model)."""


class RayGrader:
    """`grade()` grades one instance as a Ray task and blocks like `evaluate_instance`,
    so `evaluate`'s `workers` threads bound how many instances are in flight."""

    def __init__(self, address: str, *, run_id: str, timeout: float, backend: str, reruns: int, limits,
                 opener: Callable, cpus_per_instance: float = 1.0) -> None:
        self.address = address
        self._connected = connect(address)
        ray = import_ray()
        self._remote = ray.remote(_grade_on_node).options(num_cpus=cpus_per_instance, max_retries=0,
                                                          scheduling_strategy="SPREAD")
        self._options = {"run_id": run_id, "timeout": timeout, "backend": backend, "reruns": reruns,
                         "limits": limits, "opener": opener}

    def grade(self, task: Task, prediction: Prediction, instance_dir: Path, stop: threading.Event) -> Grade:
        """Raises InfraError (driver retries), RemoteHarnessError, or `EvaluationStopped` after
        cancelling the task (the node closes its environment on the way out)."""
        ray = import_ray()
        ref = self._remote.remote(task.model_dump(mode="json"), prediction.model_dump(mode="json"), self._options)
        while not ray.wait([ref], timeout=_POLL_S)[0]:
            if stop.is_set():
                ray.cancel(ref)
                ray.wait([ref], timeout=_CANCEL_GRACE_S)
                raise EvaluationStopped()
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayError as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise InfraError(f"ray: {type(exc).__name__}: {reason}") from None
        for name, text in outcome["files"].items():
            atomic_write_text(instance_dir / Path(name).name, text)
        if "infra_error" in outcome:
            raise InfraError(outcome["infra_error"])
        if "harness_error" in outcome:
            raise RemoteHarnessError(outcome["harness_error"])
        return Grade.model_validate(outcome["grade"])

    def close(self) -> None:
        """Disconnect (and stop a 'local' instance) if this grader connected."""
        if self._connected:
            self._connected = False
            import_ray().shutdown()
