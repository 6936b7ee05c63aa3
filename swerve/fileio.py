"""Small, safe file helpers: atomic writes (finished work is never half-written),
JSONL reading that names the file and line at fault, a lock file, and the lock that
keeps one process per run folder."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one JSON line; a single write call with a trailing newline, flushed and fsynced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def iter_jsonl(path: str | os.PathLike, *, skip_torn_last_line: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield (line number, record). A torn last line (a run killed mid-write) is skipped;
    a bad line elsewhere raises ValueError naming the file and line."""
    path = Path(path)
    with open(path, "rb") as handle:
        raw_lines = handle.readlines()
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if skip_torn_last_line and number == len(raw_lines) and not raw.endswith(b"\n"):
                break  # cut in the middle of a character by a killed writer
            raise ValueError(describe_bad_utf8(path, raw, exc, line=number)) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            if skip_torn_last_line and number == len(lines) and not line.endswith("\n"):
                return
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc


def describe_bad_utf8(path: str | os.PathLike, raw: bytes, error: UnicodeDecodeError, line: int | None = None) -> str:
    """One line naming the file, line, column and (when the rest parses as JSON) the
    field that holds bytes that are not UTF-8. `raw` is the whole file, or line `line`."""
    candidates = [raw]
    if line is None:
        start = raw.rfind(b"\n", 0, error.start) + 1
        stop = raw.find(b"\n", error.start)
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - start + 1
        candidates.insert(0, raw[start:stop if stop >= 0 else len(raw)])  # a JSONL row
    else:
        column = error.start + 1
    field = ""
    for text in candidates:
        try:
            field = _field_with_surrogate(json.loads(text.decode("utf-8", errors="surrogateescape")))
            break
        except ValueError:
            continue
    where = f", field {field!r}" if field else ""
    return (f"{path}:{line}: not valid UTF-8 (byte {raw[error.start]:#04x} at column {column}{where}); "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def _field_with_surrogate(value: Any, name: str = "") -> str:
    """The dotted name of the first string in `value` holding undecodable bytes."""
    if isinstance(value, str):
        return (name or "(value)") if any("\udc80" <= ch <= "\udcff" for ch in value) else ""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _field_with_surrogate(item, f"{name}.{key}" if name else str(key))
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _field_with_surrogate(item, f"{name}[{index}]")
            if found:
                return found
    return ""


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in records))


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing) across processes; flock also
    holds between threads of one process. Where there is no fcntl, no lock is taken."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


RUN_FOLDER_LOCK = ".swerve-run.lock"
_held_run_folders: dict[str, int] = {}
_held_lock = threading.Lock()


@contextmanager
def run_folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """One process per run folder (`swerve eval`, `swerve run`, `swerve teach`): a
    second process gets RunFolderBusy naming the folder and the holder's pid. The lock
    is an flock on FOLDER/.swerve-run.lock, so a killed holder never leaves it stuck;
    the same process may take it again (`run --evaluate` grades into its own folder)."""
    from swerve.errors import RunFolderBusy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_FOLDER_LOCK
    key = str(path.resolve())
    with _held_lock:
        if key in _held_run_folders:
            _held_run_folders[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_lock:
                _held_run_folders[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # no flock here: no lock
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusy(
                f"{folder} is in use by another swerve process (pid {holder}); wait for it to finish or stop it "
                "(or use another run id / --out)"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        with _held_lock:
            _held_run_folders[key] = 1
        yield
    finally:
        with _held_lock:
            _held_run_folders.pop(key, None)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)
