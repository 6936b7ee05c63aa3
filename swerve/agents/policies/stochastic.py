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

The outcome is not written into the trajectory (a selector must not read it off).
"""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass
from typing import Any

from swerve.agents.policies.oracle import _NEAR_MISSES, OraclePolicy, _hunk
from swerve.schema import Completion, Task

DEFAULT_P = 0.5


@dataclass(frozen=True)
class StochasticOracleSettings:
    p: float = DEFAULT_P


def parse_stochastic_argument(spec: str, argument: str) -> StochasticOracleSettings:
    """`p=0.3` -> settings; anything else is refused with the form to use."""
    settings: dict[str, float] = {}
    for pair in filter(None, argument.replace("&", ",").split(",")):
        key, _, value = pair.partition("=")
        if key.strip() != "p":
            raise ValueError(f"policy spec {spec!r}: unknown option {key.strip()!r}; use oracle-stochastic:p=0.3")
        try:
            settings["p"] = float(value)
        except ValueError as exc:
            raise ValueError(f"policy spec {spec!r}: p={value!r} is not a number; use e.g. p=0.3") from exc
    p = settings.get("p", DEFAULT_P)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"policy spec {spec!r}: p={p} is not a probability; give 0 <= p <= 1")
    return StochasticOracleSettings(p=p)


def solves(task: Task, p: float, seed: int) -> bool:
    """Whether the attempt with `seed` on `task` submits the gold fix (the policy's own draw)."""
    return _rng(task, seed).random() < p


def _rng(task: Task, seed: int) -> random.Random:
    return random.Random(f"oracle-stochastic:{int(seed)}:{task.instance_id}")


class StochasticOraclePolicy:
    """The oracle on the gold patch (probability p) or on a wrong patch made from it."""

    name = "oracle-stochastic"

    def __init__(self, task: Task, p: float = DEFAULT_P, seed: int = 0) -> None:
        if not task.patch.strip():
            raise ValueError(f"task {task.instance_id} has no gold patch; the oracle-stochastic policy needs one")
        self.p = p
        self.seed = int(seed)
        rng = _rng(task, self.seed)
        gold = rng.random() < p
        patch = task.patch if gold else (wrong_patch(task.patch, rng) or "")
        self._inner = OraclePolicy(task.model_copy(update={"patch": patch}), seed=self.seed) if patch else None

    def describe(self) -> dict[str, Any]:
        return {"policy": "oracle-stochastic", "oracle_made": True, "p": self.p, "seed": self.seed}

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        if self._inner is None:
            from swerve.agents.policies.noop import NoopPolicy

            return NoopPolicy().act(messages, tools)
        return self._inner.act(messages, tools)


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
