"""A scripted teacher that knows the gold patch and works like an engineer.

It reads the code around each change, adds the task's regression tests and runs
them (they fail), makes the gold edits hunk by hunk with `str_replace_editor`
(`create` for new files), re-runs the tests (they pass), takes its temporary
copy of the tests out again so the patch holds only the fix, and submits.
With `detours=True` it first makes a plausible but wrong edit, runs the tests,
and reverts it with `undo_edit` — trajectories that show recovering from a
mistake. Every trajectory it makes is labelled `oracle` in its manifest.

The script is a generator that receives each observation, so the teacher can
react: a `str_replace` the editor refuses (an ambiguous match) falls back to
`git apply` of that hunk.
"""

from __future__ import annotations

import random
import re
import shlex
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from swerve.schema import Completion, Task, ToolCall

_HEREDOC = "SWERVE_PATCH_EOF"


@dataclass
class _Hunk:
    old: str
    new: str
    source_start: int
    source_length: int
    text: str


def next_scripted_step(policy: Any, messages: list[dict[str, Any]]) -> Completion:
    """One turn of a policy that plays a script: `policy._plan()` is a generator of
    (text, tool call) pairs that is sent each observation; a new conversation restarts it,
    and an exhausted script submits. `policy._script` and `policy._calls` hold its state."""
    observation = ""
    if messages and messages[-1].get("role") in ("tool", "user"):
        observation = str(messages[-1].get("content") or "")
    try:
        if policy._script is None or not any(m.get("role") == "assistant" for m in messages):
            policy._script = policy._plan()
            text, call = next(policy._script)
        else:
            text, call = policy._script.send(observation)
    except StopIteration:
        text, call = "Done.", ToolCall(name="submit", arguments={})
    policy._calls += 1
    call.id = f"call_{policy._calls}"
    return Completion(text=text, tool_calls=[call], finish_reason="tool_calls")


class OraclePolicy:
    name = "oracle"

    def __init__(self, task: Task, detours: bool = False, seed: int = 0) -> None:
        if not task.patch.strip():
            raise ValueError(f"task {task.instance_id} has no gold patch; the oracle policy needs one")
        self.task = task
        self.detours = detours
        self.seed = seed
        self._script: Generator[tuple[str, ToolCall], str, None] | None = None
        self._calls = 0

    def describe(self) -> dict[str, Any]:
        return {"policy": "oracle", "oracle_made": True, "detours": self.detours, "seed": self.seed}

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        return next_scripted_step(self, messages)

    def _plan(self) -> Generator[tuple[str, ToolCall], str, None]:
        from unidiff import PatchSet

        files = list(PatchSet(self.task.patch))
        modified = [f for f in files if f.is_modified_file and not f.is_binary_file and not f.is_rename]
        for patched in modified:
            hunks = list(patched)
            first = max(1, hunks[0].source_start - 5)
            last = hunks[-1].source_start + max(hunks[-1].source_length, 1) - 1
            yield (
                f"Let me read the code in {patched.path} that this issue is about.",
                _editor("view", patched.path, view_range=[first, max(first, last)]),
            )

        test_patch = self.task.test_patch.strip()
        tests = list(self.task.FAIL_TO_PASS)
        run_tests = bool(tests)
        if test_patch:
            yield (
                "I'll add regression tests for the issue so I can see it fail.",
                _bash(f"git apply <<'{_HEREDOC}' && git status --short\n{test_patch}\n{_HEREDOC}"),
            )
        if run_tests:
            yield ("Now run the tests that cover the issue; they should fail before the fix.", _bash(self._test_command(tests)))

        if self.detours and modified:
            yield from self._detour(modified)

        for patched in files:
            yield from self._apply_file(patched)

        if run_tests:
            yield ("Run the same tests again to check the fix.", _bash(self._test_command(tests)))
        if test_patch:
            yield (
                "The fix works. I'll take my temporary copy of the regression tests out again so the "
                "patch holds only the source change (the project's own test suite covers it).",
                _bash(f"git apply -R <<'{_HEREDOC}' && git status --short\n{test_patch}\n{_HEREDOC}"),
            )
        yield ("The change is complete and verified; submitting.", ToolCall(name="submit", arguments={}))

    def _test_command(self, tests: list[str]) -> str:
        command = self.task.test_cmd.strip() or "python -m pytest -q"
        return f"{command} {' '.join(shlex.quote(test) for test in tests)} 2>&1"

    def _apply_file(self, patched: Any) -> Generator[tuple[str, ToolCall], str, None]:
        path = patched.path
        if patched.is_binary_file or patched.is_rename:
            yield (f"{path} needs a rename or binary change; I'll apply it with git.", _git_apply(str(patched)))
            return
        if patched.is_added_file:
            content = "".join(_hunk(h).new for h in patched)
            yield (f"Create the new file {path}.", _editor("create", path, file_text=content))
            return
        if patched.is_removed_file:
            yield (f"{path} is no longer needed; remove it.", _bash(f"git rm -q {shlex.quote(path)}"))
            return
        header = f"--- a/{patched.source_file[2:] if patched.source_file.startswith('a/') else path}\n+++ b/{path}\n"
        for number, raw in enumerate(patched, start=1):
            hunk = _hunk(raw)
            where = f" (change {number} of {len(patched)})" if len(patched) > 1 else ""
            if not hunk.old:
                call = _editor("insert", path, insert_line=max(hunk.source_start, 0), new_str=hunk.new)
                observation = yield (f"Add the new code to {path}{where}.", call)
            else:
                call = _editor("str_replace", path, old_str=hunk.old, new_str=hunk.new)
                observation = yield (f"Edit {path}{where}.", call)
            if observation.startswith("Error") or observation.startswith("Format error"):
                yield (
                    "The editor could not place that change unambiguously; I'll apply this hunk with git instead.",
                    _git_apply(header + hunk.text),
                )

    def _detour(self, modified: list[Any]) -> Generator[tuple[str, ToolCall], str, None]:
        rng = random.Random(self.seed)
        choices = [(patched, raw) for patched in modified for raw in patched]
        rng.shuffle(choices)
        for patched, raw in choices:
            hunk = _hunk(raw)
            wrong = _wrong_version(hunk) if hunk.old else None
            if wrong is not None:
                break
        else:
            return
        observation = yield (
            f"A first idea: a smaller change in {patched.path} might be enough. Let me try it.",
            _editor("str_replace", patched.path, old_str=hunk.old, new_str=wrong),
        )
        if observation.startswith("Error") or observation.startswith("Format error"):
            return
        test_files = list(dict.fromkeys(test.split("::")[0] for test in self.task.FAIL_TO_PASS))
        if test_files:
            observation = yield (
                "Check it against the tests of the affected module.", _bash(self._test_command(test_files))
            )
            failed = "[exit code" in observation or " failed" in observation or " error" in observation
            verdict = "The tests still fail" if failed else "The tests pass, but this only papers over the problem"
        else:
            verdict = "On reflection that does not address the issue"
        yield (
            f"{verdict}, so that idea was wrong. Revert it and make the proper change.",
            _editor("undo_edit", patched.path),
        )


def _hunk(raw: Any) -> _Hunk:
    """The text a hunk replaces and its replacement, honouring '\\ No newline at end of file'."""
    old: list[str] = []
    new: list[str] = []
    last_side: list[list[str]] = []
    for line in raw:
        if line.line_type == "\\":
            for side in last_side:
                if side and side[-1].endswith("\n"):
                    side[-1] = side[-1][:-1]
            continue
        if line.line_type == " ":
            old.append(line.value)
            new.append(line.value)
            last_side = [old, new]
        elif line.line_type == "-":
            old.append(line.value)
            last_side = [old]
        elif line.line_type == "+":
            new.append(line.value)
            last_side = [new]
    return _Hunk("".join(old), "".join(new), raw.source_start, raw.source_length, str(raw))


_NEAR_MISSES = (
    (re.compile(r" is not "), " is "),
    (re.compile(r" not in "), " in "),
    (re.compile(r" in "), " not in "),
    (re.compile(r"!="), "=="),
    (re.compile(r"=="), "!="),
    (re.compile(r"<="), "<"),
    (re.compile(r">="), ">"),
    (re.compile(r" < "), " <= "),
    (re.compile(r" > "), " >= "),
    (re.compile(r" and "), " or "),
    (re.compile(r" or "), " and "),
    (re.compile(r" \+ "), " - "),
    (re.compile(r" \+ "), " * "),
    (re.compile(r" - "), " + "),
    (re.compile(r" \* "), " + "),
    (re.compile(r"\bTrue\b"), "False"),
    (re.compile(r"\bFalse\b"), "True"),
    (re.compile(r"\+ 1\b"), "- 1"),
    (re.compile(r"- 1\b"), "+ 1"),
    (re.compile(r"\+= 1\b"), "+= 2"),
    (re.compile(r", [\w.]+\)"), ")"),
    (re.compile(r"\b0\b"), "1"),
    (re.compile(r"\b1\b"), "0"),
)


def _wrong_version(hunk: _Hunk) -> str | None:
    """A plausible near miss: the right place, almost the right code.

    First choice: the gold edit with one token-level slip in an added line (a flipped
    comparison, `and`/`or`, an off-by-one) — still valid syntax, so the tests run and
    fail on behaviour. Otherwise the gold edit's deletions alone, when that keeps the
    block structure intact. None when neither gives a distinct edit.
    """
    new_lines = hunk.new.splitlines(keepends=True)
    old_lines = hunk.old.splitlines(keepends=True)
    added = [i for i, line in enumerate(new_lines) if line not in old_lines and line.strip()
             and not line.strip().startswith("#")]
    for pattern, replacement in _NEAR_MISSES:
        for index in added:
            mutated = pattern.sub(replacement, new_lines[index], count=1)
            if mutated != new_lines[index]:
                candidate = "".join(new_lines[:index] + [mutated] + new_lines[index + 1 :])
                if candidate not in (hunk.old, hunk.new):
                    return candidate
    removed = [line for line in old_lines if line not in new_lines]
    if removed:
        kept = [line for line in old_lines if line not in removed]
        candidate = "".join(kept)
        if candidate not in (hunk.old, hunk.new) and _blocks_intact(kept, removed):
            return candidate
    return None


def _blocks_intact(lines: list[str], removed: list[str] | None = None) -> bool:
    """A cheap syntax guard for a deletions-only edit: every block opener keeps a body,
    no line gains indentation without an opener, and no clause (except/else/...) is cut
    from its statement."""
    if any(line.strip().startswith(("except", "else", "elif", "finally")) for line in removed or []):
        return False
    code = [line.rstrip("\n") for line in lines if line.strip() and not line.strip().startswith("#")]
    for current, following in zip(code, code[1:]):
        indent = len(current) - len(current.lstrip())
        deeper = len(following) - len(following.lstrip()) > indent
        opener = current.rstrip().endswith(":")
        if opener and not deeper:
            return False
        if deeper and not opener and not current.rstrip().endswith(("(", "[", "{", ",", "\\")):
            return False
    return not (code and code[-1].rstrip().endswith(":"))


def _editor(command: str, path: str, **arguments: Any) -> ToolCall:
    return ToolCall(name="str_replace_editor", arguments={"command": command, "path": path, **arguments})


def _bash(command: str) -> ToolCall:
    return ToolCall(name="bash", arguments={"command": command})


def _git_apply(diff: str) -> ToolCall:
    body = diff if diff.endswith("\n") else diff + "\n"
    return _bash(f"git apply --recount <<'{_HEREDOC}'\n{body}{_HEREDOC}")
