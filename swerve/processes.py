"""Process helpers shared by run locks and container reaping."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def host_identity() -> str:
    """This host as `hostname/machine-id` (the machine id when the system has one), so a
    container's owner can be told apart from a process with the same pid elsewhere."""
    import socket

    machine_id = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as handle:
                machine_id = handle.read().strip()
        except OSError:
            continue
        if machine_id:
            break
    return f"{socket.gethostname()}/{machine_id}" if machine_id else socket.gethostname()


def pid_namespace() -> str:
    """This process's PID namespace (`pid:[INODE]`), or "" where /proc does not say: pids
    are only comparable inside one namespace."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
