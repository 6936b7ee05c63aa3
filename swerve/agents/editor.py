"""The `str_replace_editor` tool, implemented over the Environment protocol.

It only uses `read_file`, `write_file` and `exec`, so it works the same on every
backend. Every failure comes back as an `EditorResult` with `ok=False` and a
message that says what was wrong and how to fix the call; infrastructure errors
(`InfraError`) are not caught, they are never the model's fault.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Any

from swerve.errors import InfraError

SNIPPET_CONTEXT_LINES = 4
MAX_VIEW_CHARS = 40_000
LIST_DEPTH = 2


@dataclass
class EditorResult:
    output: str
    ok: bool = True


class EditorError(Exception):
    """A bad editor call; the message is shown to the model."""


@dataclass
class StrReplaceEditor:
    """The editor for one episode: holds the per-file undo history.

    The history stores each file's text before every edit (None when the edit
    created the file), so `undo_edit` can walk back several edits one by one.
    """

    env: Any
    root: str = ""
    history: dict[str, list[str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.root:
            self.root = getattr(getattr(self.env, "info", None), "workdir", "") or "/testbed"
        self.root = posixpath.normpath(self.root)

    def run(self, arguments: dict[str, Any]) -> EditorResult:
        command = arguments.get("command")
        handler = {
            "view": self._view,
            "create": self._create,
            "str_replace": self._str_replace,
            "insert": self._insert,
            "undo_edit": self._undo,
        }.get(command)
        if handler is None:
            return EditorResult(f"Error: unknown command {command!r}; use view, create, str_replace, insert or undo_edit.", ok=False)
        try:
            path = self.resolve(arguments.get("path", ""))
            return EditorResult(handler(path, arguments))
        except InfraError:
            raise
        except EditorError as exc:
            return EditorResult(f"Error: {exc}", ok=False)

    def resolve(self, path: str) -> str:
        """An absolute, normalised path inside the repository, or EditorError."""
        if not isinstance(path, str) or not path.strip():
            raise EditorError("'path' is empty; give a file path inside the repository.")
        path = path.strip()
        absolute = posixpath.normpath(path if path.startswith("/") else posixpath.join(self.root, path))
        if absolute != self.root and not absolute.startswith(self.root + "/"):
            raise EditorError(f"{path} is outside the repository {self.root}; edit files under {self.root}.")
        return absolute

    def _kind(self, path: str) -> str:
        """'file', 'dir', 'other', 'missing', or 'binary' (a regular file that is not UTF-8:
        backends read files through their shell, which replaces invalid bytes)."""
        quoted = shlex.quote(path)
        result = self.env.exec(
            f"if [ -d {quoted} ]; then echo dir; elif [ -f {quoted} ]; then "
            f"command -v iconv >/dev/null && ! iconv -f UTF-8 -t UTF-8 {quoted} >/dev/null 2>&1 "
            "&& echo binary || echo file; "
            f"elif [ -e {quoted} ]; then echo other; else echo missing; fi",
            timeout=30,
        )
        words = result.output.strip().split()
        return words[-1] if words else "missing"

    def _read(self, path: str, kind: str | None = None) -> str:
        """The text of file `path`; `kind` is `_kind(path)` when the caller already asked."""
        kind = kind or self._kind(path)
        if kind == "missing":
            raise EditorError(f"{path} does not exist; check the path (view a directory to list it) or use create.")
        if kind == "dir":
            raise EditorError(f"{path} is a directory; give a file path.")
        if kind == "binary":
            raise EditorError(f"{path} is not UTF-8 text; inspect it with bash instead.")
        if kind != "file":
            raise EditorError(f"{path} is not a regular file.")
        try:
            return self.env.read_file(path)
        except InfraError:
            raise
        except UnicodeDecodeError as exc:
            raise EditorError(f"{path} is not UTF-8 text ({exc.reason}); inspect it with bash instead.") from exc
        except Exception as exc:
            raise EditorError(f"could not read {path}: {exc}") from exc

    def _write(self, path: str, text: str) -> None:
        try:
            self.env.write_file(path, text)
        except InfraError:
            raise
        except Exception as exc:
            raise EditorError(f"could not write {path}: {exc}") from exc

    def _remember(self, path: str, before: str | None) -> None:
        self.history.setdefault(path, []).append(before)

    def _view(self, path: str, arguments: dict[str, Any]) -> str:
        kind = self._kind(path)
        if kind == "dir":
            if arguments.get("view_range") is not None:
                raise EditorError(f"{path} is a directory; view_range only applies to files.")
            return self._list_dir(path)
        text = self._read(path, kind)
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        first, last = 1, len(lines)
        view_range = arguments.get("view_range")
        if view_range is not None:
            first, last = _parse_range(view_range, len(lines))
        shown = _numbered(lines[first - 1 : last], first)
        if len(shown) > MAX_VIEW_CHARS and view_range is None:
            cut = shown[:MAX_VIEW_CHARS].rsplit("\n", 1)[0]
            return (
                f"{cut}\n[file has {len(lines)} lines; output cut at {MAX_VIEW_CHARS} characters. "
                "Use view_range to see the rest, or grep -n to find what you need.]"
            )
        header = f"Here is {path}" + (f" (lines {first}-{last} of {len(lines)})" if view_range is not None else "") + ":"
        return f"{header}\n{shown}" if shown else f"{path} is empty."

    def _list_dir(self, path: str) -> str:
        quoted = shlex.quote(path)
        result = self.env.exec(
            f"find {quoted} -maxdepth {LIST_DEPTH} -not -path '*/.*' -not -path '*/__pycache__*' | sort | head -500",
            timeout=60,
        )
        return f"Files and directories up to {LIST_DEPTH} levels deep in {path} (hidden ones left out):\n{result.output.rstrip()}"

    def _create(self, path: str, arguments: dict[str, Any]) -> str:
        kind = self._kind(path)
        if kind != "missing":
            raise EditorError(
                f"{path} already exists; create only makes new files. Use str_replace to change it "
                "(or remove it with bash first)."
            )
        text = arguments.get("file_text", "")
        self._write(path, text)
        self._remember(path, None)
        return f"Created {path} ({text.count(chr(10)) + (0 if text.endswith(chr(10)) or not text else 1)} lines)."

    def _str_replace(self, path: str, arguments: dict[str, Any]) -> str:
        old = arguments.get("old_str", "")
        new = arguments.get("new_str", "") or ""
        if old == "":
            raise EditorError("old_str is empty; give the exact text to replace (use insert to add text).")
        text = self._read(path)
        count = text.count(old)
        if count == 0:
            hint = ""
            if old.strip() and old.strip() in text:
                hint = " (it does appear with different surrounding whitespace; copy it exactly)"
            raise EditorError(f"no replacement was made: old_str does not appear verbatim in {path}{hint}.")
        if count > 1:
            starts = _match_lines(text, old)
            raise EditorError(
                f"no replacement was made: old_str appears {count} times in {path} (at lines "
                f"{', '.join(map(str, starts))}); include more surrounding lines to make it unique."
            )
        if old == new:
            raise EditorError("old_str and new_str are identical; nothing would change.")
        start_line = text[: text.index(old)].count("\n") + 1
        updated = text.replace(old, new, 1)
        self._write(path, updated)
        self._remember(path, text)
        return f"Edited {path}. Here is the changed region:\n" + _snippet(updated, start_line, new.count("\n") + 1)

    def _insert(self, path: str, arguments: dict[str, Any]) -> str:
        try:
            line = int(arguments.get("insert_line"))
        except (TypeError, ValueError) as exc:
            raise EditorError("insert_line must be an integer line number.") from exc
        new = arguments.get("new_str", "")
        text = self._read(path)
        lines = text.split("\n")
        trailing_newline = text.endswith("\n")
        if trailing_newline:
            lines.pop()
        if text == "":
            lines = []
        if line < 0 or line > len(lines):
            raise EditorError(f"insert_line {line} is out of range: {path} has {len(lines)} lines (use 0 to {len(lines)}).")
        inserted = new[:-1].split("\n") if new.endswith("\n") else new.split("\n")
        result_lines = lines[:line] + inserted + lines[line:]
        updated = "\n".join(result_lines) + ("\n" if trailing_newline or text == "" else "")
        self._write(path, updated)
        self._remember(path, text)
        return f"Inserted {len(inserted)} line(s) into {path} after line {line}:\n" + _snippet(updated, line + 1, len(inserted))

    def _undo(self, path: str, arguments: dict[str, Any]) -> str:
        stack = self.history.get(path)
        if not stack:
            raise EditorError(f"there is no edit of {path} to undo (only edits made with this tool can be undone).")
        before = stack.pop()
        if before is None:
            result = self.env.exec(f"rm -f {shlex.quote(path)}", timeout=30)
            if result.exit_code != 0:
                stack.append(before)
                raise EditorError(f"could not remove {path}: {result.output.strip()}")
            return f"Undid the creation of {path} (file removed)."
        self._write(path, before)
        lines = before.count("\n") + (0 if before.endswith("\n") or not before else 1)
        return f"Reverted the last edit of {path}; it is back to its previous {lines} lines."


def _parse_range(view_range: Any, total: int) -> tuple[int, int]:
    try:
        first, last = (int(v) for v in view_range)
    except (TypeError, ValueError) as exc:
        raise EditorError("view_range must be two integers [first, last].") from exc
    if last == -1:
        last = total
    if first < 1 or first > max(total, 1):
        raise EditorError(f"view_range start {first} is out of range: the file has {total} lines (use 1 to {total}).")
    if last < first:
        raise EditorError(f"view_range end {last} is before its start {first}.")
    if last > total:
        raise EditorError(f"view_range end {last} is past the end: the file has {total} lines (use -1 for the end).")
    return first, last


def _numbered(lines: list[str], first: int) -> str:
    return "\n".join(f"{number:6d}\t{line}" for number, line in enumerate(lines, start=first))


def _match_lines(text: str, needle: str) -> list[int]:
    starts, position = [], text.find(needle)
    while position >= 0:
        starts.append(text[:position].count("\n") + 1)
        position = text.find(needle, position + 1)
    return starts


def _snippet(text: str, first_changed: int, changed: int) -> str:
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    start = max(1, first_changed - SNIPPET_CONTEXT_LINES)
    end = min(len(lines), first_changed + max(changed, 1) - 1 + SNIPPET_CONTEXT_LINES)
    return _numbered(lines[start - 1 : end], start)
