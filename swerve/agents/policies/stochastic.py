"""A seeded, stochastic oracle: the gold fix with probability p, otherwise a plausible
wrong or partial edit. Spec: `oracle-stochastic:p=0.3` (p defaults to 0.5).

It stands in for a sampling model when checking many-attempt machinery without one
(pass@k, selection, preference pairs): whether attempt `seed` on a task solves it
is one draw from `random.Random` seeded by (seed, instance id), so a run is
reproducible and attempts with different seeds are independent draws.

A failing attempt works exactly like the oracle (reads the code, runs the tests,
edits hunk by hunk, submits) but its edits are one of:

- a near miss: one hunk of the gold fix with a single token-level slip in one of its
  added lines (a flipped comparison, `and`/`or`, an off-by-one, swapped or
  dropped arguments, a call left uncalled), chosen at random
  among all the slips the fix allows, so wrong attempts rarely agree with each other;
- a partial fix: a random non-empty proper subset of the gold hunks.

Like an agent without the hidden tests, it never runs them. Instead, with probability
`repro` (default 0.7, drawn separately from the outcome), it writes a reproduction test
from the issue's own examples (swerve.agents.policies.reproduction: a random non-empty
subset of the issue's ```python blocks, in a file next to a visible test module that
mentions the symbol the issue names), runs it before and after its edits, and leaves it
in the patch; a wrong attempt writes one the same way. Spec: `oracle-stochastic:p=0.3,repro=0.7`.

The outcome is not written into the trajectory (a selector must not read it off).
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from swerve.agents.policies import reproduction
from swerve.agents.policies.oracle import _NEAR_MISSES, OraclePolicy, _bash, _editor, _hunk, next_scripted_step
from swerve.schema import Completion, Task, ToolCall

DEFAULT_P = 0.5
DEFAULT_REPRO = 0.7
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class StochasticOracleSettings:
    p: float = DEFAULT_P
    repro: float = DEFAULT_REPRO


def parse_stochastic_argument(spec: str, argument: str) -> StochasticOracleSettings:
    """`p=0.3,repro=0.7` -> settings; anything else is refused with the form to use."""
    settings: dict[str, float] = {}
    for pair in filter(None, argument.replace("&", ",").split(",")):
        key, _, value = pair.partition("=")
        key = key.strip()
        if key not in ("p", "repro"):
            raise ValueError(f"policy spec {spec!r}: unknown option {key!r}; use oracle-stochastic:p=0.3,repro=0.7")
        try:
            settings[key] = float(value)
        except ValueError as exc:
            raise ValueError(f"policy spec {spec!r}: {key}={value!r} is not a number; use e.g. {key}=0.3") from exc
    for key, value in settings.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"policy spec {spec!r}: {key}={value} is not a probability; give 0 <= {key} <= 1")
    return StochasticOracleSettings(p=settings.get("p", DEFAULT_P), repro=settings.get("repro", DEFAULT_REPRO))


def solves(task: Task, p: float, seed: int) -> bool:
    """Whether the attempt with `seed` on `task` submits the gold fix (the policy's own draw)."""
    return _rng(task, seed).random() < p


def _rng(task: Task, seed: int) -> random.Random:
    return random.Random(f"oracle-stochastic:{int(seed)}:{task.instance_id}")


def writes_reproduction(task: Task, repro: float, seed: int) -> list[int]:
    """The issue examples (0-based) the attempt with `seed` puts in its reproduction test;
    empty when it writes none. Its own draw, apart from the outcome's."""
    rng = random.Random(f"oracle-stochastic-repro:{int(seed)}:{task.instance_id}")
    examples = reproduction.issue_examples(task.problem_statement)
    if not examples or rng.random() >= repro:
        return []
    count = rng.randint(1, min(MAX_EXAMPLES, len(examples)))
    return sorted(rng.sample(range(len(examples)), count))


class StochasticOraclePolicy:
    """The oracle on the gold patch (probability p) or on a wrong patch made from it,
    with (probability `repro`) a reproduction test written from the issue text."""

    name = "oracle-stochastic"

    def __init__(self, task: Task, p: float = DEFAULT_P, seed: int = 0, repro: float = DEFAULT_REPRO) -> None:
        if not task.patch.strip():
            raise ValueError(f"task {task.instance_id} has no gold patch; the oracle-stochastic policy needs one")
        self.p = p
        self.repro = repro
        self.seed = int(seed)
        rng = _rng(task, self.seed)
        gold = rng.random() < p
        patch = task.patch if gold else (wrong_patch(task.patch, rng) or "")
        # The editing oracle never sees the hidden tests: no test patch, no test names.
        blind = task.model_copy(update={"patch": patch, "test_patch": "", "FAIL_TO_PASS": [], "PASS_TO_PASS": []})
        self._inner = OraclePolicy(blind, seed=self.seed) if patch else None
        self._issue = task.problem_statement
        self._test_cmd = task.test_cmd
        self._examples = writes_reproduction(task, repro, self.seed)
        self._script: Generator[tuple[str, ToolCall], str, None] | None = None
        self._calls = 0

    @property
    def planned_patch(self) -> str:
        """The source change this attempt makes (the gold fix or a wrong one; empty when none)."""
        return self._inner.task.patch if self._inner else ""

    def describe(self) -> dict[str, Any]:
        return {"policy": "oracle-stochastic", "oracle_made": True, "p": self.p, "repro": self.repro,
                "seed": self.seed}

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        if self._inner is None:
            from swerve.agents.policies.noop import NoopPolicy

            return NoopPolicy().act(messages, tools)
        return next_scripted_step(self, messages)

    def _plan(self) -> Generator[tuple[str, ToolCall], str, None]:
        edits = self._inner._plan()
        text, call = next(edits)
        while call.name == "str_replace_editor" and call.arguments.get("command") == "view":
            observation = yield text, call
            text, call = edits.send(observation)
        test_file = yield from self._write_reproduction()
        if test_file:
            yield "Run it; it should fail before the fix.", _bash(self._pytest(test_file))
        while call.name != "submit":
            observation = yield text, call
            try:
                text, call = edits.send(observation)
            except StopIteration:
                break
        if test_file:
            yield "Run the reproduction test again to check the fix.", _bash(self._pytest(test_file))
        yield "The change is complete; submitting.", ToolCall(name="submit", arguments={})

    def _write_reproduction(self) -> Generator[tuple[str, ToolCall], str, str | None]:
        """Find a visible test module for the issue's symbol, learn what it provides, write
        the reproduction test next to it. The path written, or None."""
        symbol = reproduction.issue_symbol(self._issue)
        if not self._examples or not symbol:
            return None
        examples = [reproduction.issue_examples(self._issue)[i] for i in self._examples]
        listed = yield (f"I'll reproduce the issue with its own examples first. Which tests cover `{symbol}`?",
                        _bash(reproduction.search_command(symbol)))
        sources = _patched_paths(self.planned_patch)
        module_file = reproduction.pick_test_module(listed, sources)
        if module_file is None:
            return None
        names = list(dict.fromkeys(name for code in examples for name in reproduction.free_names(code)))
        printed = yield (f"Check which helpers the examples use are available from {module_file}.",
                         _bash(reproduction.introspect_command(module_file, names)))
        found = reproduction.parse_introspection(printed)
        if found is None:
            return None
        path = str(PurePosixPath(module_file).parent / reproduction.REPRODUCTION_FILE)
        title = self._issue.strip().splitlines()[0]
        yield ("Write the issue's examples as a reproduction test.",
               _editor("create", path, file_text=reproduction.render_reproduction_test(title, examples, found)))
        return path

    def _pytest(self, path: str) -> str:
        command = self._test_cmd.strip() or "python -m pytest -q"
        return f"{command} {path} 2>&1"


def _patched_paths(patch: str) -> list[str]:
    return [line[6:].strip() for line in patch.splitlines() if line.startswith("+++ b/")]


def wrong_patch(gold: str, rng: random.Random) -> str | None:
    """A unified diff that is almost the gold fix: a near miss or a partial fix, chosen with
    `rng`. None when the gold fix allows neither (one hunk, nothing to slip)."""
    from unidiff import PatchSet

    files = list(PatchSet(gold))
    hunks = [(f_index, h_index) for f_index, patched in enumerate(files) if _editable(patched)
             for h_index, _ in enumerate(patched)]
    misses = []
    for f_index, h_index in hunks:
        hunk = _hunk(files[f_index][h_index])
        for variant in _near_misses(hunk.old, hunk.new):
            misses.append((f_index, h_index, variant))
    partial_possible = sum(len(list(patched)) for patched in files) > 1
    if misses and (not partial_possible or rng.random() < 0.7):
        f_index, h_index, variant = rng.choice(misses)
        return _render(files, replace={(f_index, h_index): variant})
    if partial_possible:
        every = [(f, h) for f, patched in enumerate(files) for h, _ in enumerate(patched)]
        keep = set(rng.sample(every, rng.randint(1, len(every) - 1)))
        return _render(files, keep=keep)
    return None


def _editable(patched: Any) -> bool:
    return patched.is_modified_file and not patched.is_binary_file and not patched.is_rename


def _near_misses(old: str, new: str) -> list[str]:
    """Every distinct one-slip variant of `new`: a token slip in one added, non-comment
    line (the oracle's near misses, an integer off by one, two arguments swapped, one
    argument dropped), or only some of the hunk's line changes made."""
    if not old or not new.endswith("\n") or not old.endswith("\n"):
        return []
    new_lines = new.splitlines(keepends=True)
    old_lines = old.splitlines(keepends=True)
    variants: list[str] = []

    def add(candidate: str) -> None:
        if candidate not in (old, new) and candidate not in variants:
            variants.append(candidate)

    for index, line in enumerate(new_lines):
        if line in old_lines or not line.strip() or line.strip().startswith(("#", '"', "'")):
            continue
        for mutated in _line_slips(line):
            add("".join(new_lines[:index] + [mutated] + new_lines[index + 1:]))
    for candidate in _partial_changes(old_lines, new_lines):
        add(candidate)
    return variants


_INTEGER = re.compile(r"\b\d+\b")
_EMPTY_CALL = re.compile(r"(\w)\(\)")
_CALL_ARGUMENTS = re.compile(r"\(([^()]*,[^()]*)\)")


def _line_slips(line: str) -> list[str]:
    slips = []
    for pattern, replacement in _NEAR_MISSES:
        mutated = pattern.sub(replacement, line, count=1)
        if mutated != line:
            slips.append(mutated)
    for match in _EMPTY_CALL.finditer(line):
        slips.append(line[:match.end(1)] + line[match.end():])
    for match in _INTEGER.finditer(line):
        for delta in (1, -1):
            value = int(match.group()) + delta
            if value >= 0:
                slips.append(line[:match.start()] + str(value) + line[match.end():])
    for match in _CALL_ARGUMENTS.finditer(line):
        arguments = [a.strip() for a in match.group(1).split(",")]
        if any(not a for a in arguments):
            continue
        for i in range(len(arguments) - 1):
            swapped = arguments[:i] + [arguments[i + 1], arguments[i]] + arguments[i + 2:]
            slips.append(line[:match.start(1)] + ", ".join(swapped) + line[match.end(1):])
        for i in range(len(arguments)):
            slips.append(line[:match.start(1)] + ", ".join(arguments[:i] + arguments[i + 1:]) + line[match.end(1):])
    return slips


def _partial_changes(old_lines: list[str], new_lines: list[str]) -> list[str]:
    """`old` with only a non-empty proper subset of the hunk's line changes made."""
    changes = [op for op in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes()
               if op[0] != "equal"]
    if not 1 < len(changes) <= 6:
        return []
    results = []
    for mask in range(1, (1 << len(changes)) - 1):
        chosen = {changes[i] for i in range(len(changes)) if mask >> i & 1}
        out: list[str] = []
        position = 0
        for tag, a0, a1, b0, b1 in sorted(chosen, key=lambda op: op[1]):
            out.extend(old_lines[position:a0])
            out.extend(new_lines[b0:b1])
            position = a1
        out.extend(old_lines[position:])
        results.append("".join(out))
    return results


def _render(files: list[Any], *, replace: dict | None = None, keep: set | None = None) -> str:
    """The patch text of `files`, with hunk (f, h)'s new side replaced, or only the hunks in `keep`."""
    replace = replace or {}
    out: list[str] = []
    for f_index, patched in enumerate(files):
        chosen = [h for h, _ in enumerate(patched) if keep is None or (f_index, h) in keep]
        if not chosen:
            continue
        out.append(f"--- {patched.source_file}\n+++ {patched.target_file}\n")
        for h_index in chosen:
            raw = patched[h_index]
            if (f_index, h_index) in replace:
                out.append(_hunk_text(_hunk(raw).old, replace[(f_index, h_index)], raw.source_start))
            else:
                out.append(str(raw) if str(raw).endswith("\n") else str(raw) + "\n")
    return "".join(out)


def _hunk_text(old: str, new: str, source_start: int) -> str:
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    body: list[str] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            body.extend(" " + line for line in old_lines[a0:a1])
        else:
            body.extend("-" + line for line in old_lines[a0:a1])
            body.extend("+" + line for line in new_lines[b0:b1])
    return f"@@ -{source_start},{len(old_lines)} +{source_start},{len(new_lines)} @@\n" + "".join(body)
