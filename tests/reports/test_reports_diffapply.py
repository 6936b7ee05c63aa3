"""The in-memory unified diff applier must reproduce files exactly, or refuse."""

from __future__ import annotations

import random

import pytest

from swerve.reports.diffapply import PatchApplyError, apply_patch, touched_paths
from swerve.reports.synthetic import unified_diff


def _random_edit(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randrange(1, 6)):
        action = rng.choice(["insert", "delete", "replace"])
        position = rng.randrange(len(lines) + 1)
        if action == "insert" or not lines:
            lines.insert(position, f"new line {rng.random()}\n")
        elif action == "delete":
            del lines[min(position, len(lines) - 1)]
        else:
            lines[min(position, len(lines) - 1)] = f"changed {rng.random()}\n"
    return "".join(lines)


@pytest.mark.parametrize("seed", range(25))
def test_applying_a_generated_diff_reproduces_the_target_exactly(seed):
    rng = random.Random(seed)
    before = "".join(f"line {i}\n" for i in range(rng.randrange(0, 60)))
    after = _random_edit(rng, before)
    if rng.random() < 0.3:
        after = after.rstrip("\n")  # no newline at end of file
    patch = unified_diff("pkg/mod.py", before, after)
    assert apply_patch({"pkg/mod.py": before}, patch)["pkg/mod.py"] == after


def test_new_deleted_and_untouched_files():
    files = {"keep.py": "k\n", "gone.py": "bye\n", "born.py": None}
    patch = unified_diff("gone.py", "bye\n", None) + unified_diff("born.py", None, "hello\nworld\n")
    result = apply_patch(files, patch)
    assert result == {"keep.py": "k\n", "gone.py": None, "born.py": "hello\nworld\n"}
    assert files["born.py"] is None  # the input is not modified
    assert touched_paths(patch) == {"gone.py", "born.py"}


def test_rename_moves_the_content():
    patch = (
        "diff --git a/old.py b/new.py\nsimilarity index 80%\nrename from old.py\nrename to new.py\n"
        "--- a/old.py\n+++ b/new.py\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    )
    result = apply_patch({"old.py": "a\nb\n", "new.py": None}, patch)
    assert result == {"old.py": None, "new.py": "a\nc\n"}


def test_context_mismatch_is_refused_with_the_file_named():
    patch = unified_diff("m.py", "a\nb\nc\n", "a\nB\nc\n")
    with pytest.raises(PatchApplyError, match="m.py.*expected 'b\\\\n'"):
        apply_patch({"m.py": "a\nX\nc\n"}, patch)


def test_unknown_base_file_is_refused():
    patch = unified_diff("m.py", "a\n", "b\n")
    with pytest.raises(PatchApplyError, match="not in base_files.json"):
        apply_patch({}, patch)


def test_garbage_is_not_a_patch():
    with pytest.raises(PatchApplyError):
        apply_patch({"m.py": "a\n"}, "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n-a\n+b\n")
