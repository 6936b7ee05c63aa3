"""The Environment protocol: where commands run, files are read and written, and
the repository's diff is taken. Backends: docker (the real one) and local."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from swerve.schema import ExecResult

DEFAULT_OUTPUT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Resource limits for one environment. Defaults suit a test suite of a
    mid-sized Python project on a small machine."""

    cpus: float = 1.0
    memory_mb: int = 2048
    pids: int = 512
    exec_timeout_s: float = 300.0
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT
    tmp_mb: int = 1024
    """Size of the tmpfs on /tmp (the agent's $HOME lives there too); it counts against memory."""
    disk_mb: int = 2048
    """Most the container's writable layer (the repository and the rest of its filesystem
    but /tmp) may grow; checked after each command (docker backend)."""
    spool_limit_bytes: int = 8 << 20
    """Most of one command's output kept on the host once the output limit is passed."""
    diff_file_limit_bytes: int = 1 << 20
    """diff() leaves out (and names) changed or new files larger than this."""


@dataclass
class EnvironmentInfo:
    """What an environment is, for manifests and reports."""

    backend: str
    instance_id: str
    image: str = ""
    image_digest: str = ""
    workdir: str = "/testbed"
    base_commit: str = ""
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Environment(Protocol):
    info: EnvironmentInfo

    def exec(self, cmd: str, timeout: float | None = None) -> ExecResult:
        """Run `cmd` in the persistent shell (cwd and exported variables persist)."""

    def read_file(self, path: str) -> str:
        """Read a file; relative paths are relative to the repository root."""

    def write_file(self, path: str, content: str) -> None:
        """Write a file (creating parent directories); relative to the repository root."""

    def diff(self) -> str:
        """The repository's changes against the base commit, new files included."""

    def reset(self) -> None:
        """Back to the pristine base commit: edits and untracked files removed."""

    def close(self) -> None:
        """Release everything; safe to call more than once."""

    def __enter__(self) -> "Environment": ...

    def __exit__(self, *exc: object) -> None: ...
