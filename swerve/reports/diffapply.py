"""Apply unified diffs to in-memory files, exactly, in pure Python.

Reports compare the files as the model left them with the files as the gold
patch leaves them without a container or a git checkout: the evaluator stores
the touched files at the base commit (`base_files.json`), and both patches are
applied here. The applier is strict (no fuzz, no offset search): a hunk whose
context does not match is an error, because a silently misplaced hunk would
give a wrong edit distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import unidiff

DEV_NULL = "/dev/null"


class PatchApplyError(ValueError):
    """A patch does not apply to the given files (or could not be parsed)."""


@lru_cache(maxsize=512)
def parse_patch(patch: str) -> unidiff.PatchSet:
    """Parse a unified diff; a parse failure becomes a PatchApplyError naming the cause.
    Cached: one instance's model and gold patches are read by several metrics.
    Callers must not modify the result."""
    try:
        return unidiff.PatchSet(patch)
    except unidiff.UnidiffParseError as exc:
        raise PatchApplyError(f"not a valid unified diff: {exc}") from exc


def strip_prefix(name: str) -> str | None:
    """`a/x.py` -> `x.py`; `/dev/null` -> None (the file does not exist on that side)."""
    if name == DEV_NULL or name.startswith(DEV_NULL + "\t"):
        return None
    name = name.split("\t", 1)[0]
    if name.startswith(("a/", "b/")):
        return name[2:]
    return name


def file_paths(patched: unidiff.PatchedFile) -> tuple[str | None, str | None]:
    """(source path, target path) of one file in a patch; None marks a side that does not exist."""
    source = None if patched.is_added_file else strip_prefix(patched.source_file)
    target = None if patched.is_removed_file else strip_prefix(patched.target_file)
    return source, target


def touched_paths(patch: str) -> set[str]:
    """Every path a patch reads or writes (both sides of a rename)."""
    paths: set[str] = set()
    for patched in parse_patch(patch):
        for side in file_paths(patched):
            if side is not None:
                paths.add(side)
    return paths


def hunk_lines(hunk: unidiff.Hunk) -> list[tuple[str, str]]:
    """The hunk as (type, text) pairs, type one of ' ', '-', '+', with the exact line
    endings restored from `\\ No newline at end of file` markers."""
    lines: list[tuple[str, str]] = []
    for line in hunk:
        if line.line_type == "\\":
            if lines:
                kind, text = lines[-1]
                lines[-1] = (kind, text[:-1] if text.endswith("\n") else text)
            continue
        lines.append((line.line_type, line.value))
    return lines


def apply_file_patch(text: str | None, patched: unidiff.PatchedFile, path: str) -> str | None:
    """Apply one file's hunks to `text` (None: the file does not exist). Returns the new
    text, or None when the patch deletes the file."""
    if patched.is_binary_file:
        raise PatchApplyError(f"{path}: binary patches cannot be applied in memory")
    if patched.is_added_file and text is not None and text != "":
        raise PatchApplyError(f"{path}: patch creates the file but it already exists")
    if not patched.is_added_file and text is None and len(patched) > 0:
        raise PatchApplyError(f"{path}: patch modifies the file but it does not exist")
    base = (text or "").splitlines(keepends=True)
    out: list[str] = []
    position = 0
    for hunk in patched:
        start = hunk.source_start - 1 if hunk.source_length > 0 else hunk.source_start
        if start < position or start > len(base):
            raise PatchApplyError(
                f"{path}: hunk @@ -{hunk.source_start},{hunk.source_length} @@ is out of order or past the end"
            )
        out.extend(base[position:start])
        position = start
        for kind, value in hunk_lines(hunk):
            if kind in (" ", "-"):
                if position >= len(base) or base[position] != value:
                    found = base[position] if position < len(base) else "<end of file>"
                    raise PatchApplyError(
                        f"{path}: hunk @@ -{hunk.source_start},{hunk.source_length} @@ expected "
                        f"{value!r} at line {position + 1}, found {found!r}"
                    )
                position += 1
                if kind == " ":
                    out.append(value)
            elif kind == "+":
                out.append(value)
    out.extend(base[position:])
    if patched.is_removed_file:
        return None
    return "".join(out)


def apply_patch(files: Mapping[str, str | None], patch: str) -> dict[str, str | None]:
    """Apply a unified diff to `files` ({path: text, or None for absent}); return the new
    mapping (every input path plus every path the patch creates). Pure: `files` is not changed.

    Raises PatchApplyError when the patch does not parse or a hunk does not match.
    """
    result: dict[str, str | None] = dict(files)
    if not patch.strip():
        return result
    for patched in parse_patch(patch):
        source, target = file_paths(patched)
        read_path = source if source is not None else target
        if read_path is None:
            raise PatchApplyError("a file in the patch has /dev/null on both sides")
        if source is not None and source not in files:
            raise PatchApplyError(
                f"{source}: the patch touches this file but its base text is unknown "
                "(not in base_files.json)"
            )
        current = result.get(source) if source is not None else None
        new_text = apply_file_patch(current, patched, read_path)
        if source is not None and target != source:
            result[source] = None
        if target is not None:
            result[target] = new_text
    return result
