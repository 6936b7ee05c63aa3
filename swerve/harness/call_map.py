"""Which tests start which functions, so a candidate bug is first tried on the tests
that can see it.

Once per mint environment the whole suite runs with the `call_probe` pytest plugin,
which records the functions (file, first line) each test starts. A candidate changes
lines inside one function; the tests that started that function, or a function,
lambda or comprehension nested in the changed lines, are the only ones whose result
the change can alter. A candidate cannot be narrowed (None: run the whole suite)
when one of those functions also ran outside a test's call phase: at import or
collection time, or in a fixture's setup or teardown, whose effects other tests may
share.
"""

from __future__ import annotations

import ast
import difflib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from swerve.harness.hidden_tests import TestRun, new_nonce, run_pytest_on
from swerve.harness.mutations import Candidate, is_mutable_file

PROBE_MODULE = "swerve_call_probe"
FunctionKey = tuple[str, int]
_CODE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
               ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class CallMapError(ValueError):
    """The call map could not be made or read; the message says why."""


@dataclass
class CallMap:
    """Per function key, the tests whose call phase started it; the keys that ran elsewhere."""

    order: list[str]
    callers: dict[FunctionKey, set[str]] = field(default_factory=dict)
    unselectable: set[FunctionKey] = field(default_factory=set)

    def tests_for(self, candidate: Candidate, passing: list[str]) -> list[str] | None:
        """The passing tests that can see `candidate`, in run order; None when the
        whole suite must run (the changed function also runs outside a test)."""
        keys = function_keys(candidate)
        if not keys or keys & self.unselectable:
            return None
        wanted = set(passing)
        seeing: set[str] = set()
        for key in keys:
            seeing |= self.callers.get(key, set())
        return [test for test in self.order if test in seeing and test in wanted]

    def library_files(self) -> set[str]:
        """The non-test files whose functions the map saw run."""
        return {path for path, _ in [*self.callers, *self.unselectable] if is_mutable_file(path)}

    def unmapped(self, tests: list[str]) -> list[str]:
        """Those of `tests` the map did not see run (their ids differ, or they did not run)."""
        seen = set(self.order)
        return [test for test in tests if test not in seen]


def parse_call_map(text: str) -> CallMap:
    """The CallMap from the probe's JSON; CallMapError when it is unreadable."""
    try:
        data = json.loads(text)
        functions = [(str(path), int(line)) for path, line in data["functions"]]
        order = [str(test) for test in data["order"]]
        call_map = CallMap(order=order)
        call_map.unselectable.update(functions[i] for i in data["outside"])
        for test, phases in data["tests"].items():
            for phase, indices in phases.items():
                if phase == "call":
                    for i in indices:
                        call_map.callers.setdefault(functions[i], set()).add(test)
                else:
                    call_map.unselectable.update(functions[i] for i in indices)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CallMapError(f"the call map is unreadable ({exc})") from None
    return call_map


def changed_lines(candidate: Candidate) -> tuple[int, int]:
    """First and last line (1-based) of the original source that the mutation changes."""
    before = candidate.original_source.splitlines()
    after = candidate.mutated_source.splitlines()
    spans = [(i1, i2) for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
             if tag != "equal"]
    if not spans:
        return candidate.line, candidate.line
    first = min(i1 for i1, _ in spans) + 1
    last = max(max(i2, i1 + 1) for i1, i2 in spans)
    return first, last


def function_keys(candidate: Candidate) -> set[FunctionKey]:
    """(file, first line) of the code objects that hold the change: the innermost
    function enclosing the changed lines, and every lambda, comprehension, class or
    function nested in it that overlaps them. Enclosing classes and outer functions
    are left out: their own code does not hold the change (a class body runs at
    import). Both the first decorator's line (what Python reports for a decorated
    function) and the `def` line are keys."""
    try:
        tree = ast.parse(candidate.original_source)
    except SyntaxError:
        return set()
    first, last = changed_lines(candidate)

    def span(node) -> tuple[int, int]:
        starts = [node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]
        return min(starts), node.end_lineno or node.lineno

    enclosing = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and span(node)[0] <= first and span(node)[1] >= last]
    if not enclosing:
        return set()
    function = min(enclosing, key=lambda node: span(node)[1] - span(node)[0])
    keys: set[FunctionKey] = set()
    for node in ast.walk(function):
        if node is function or (isinstance(node, _CODE_NODES) and span(node)[0] <= last and span(node)[1] >= first):
            keys.update((candidate.file, line) for line in {span(node)[0], node.lineno})
    return keys


def probe_task(task, probe_dir: str, variable: str, value: str):
    """A copy of `task` whose pytest loads the probe plugin with `variable=value`. The
    probe folder leads `PYTHONPATH`; a `PYTHONPATH=...` the task's own command sets is
    kept after it (a later assignment would otherwise drop the probe, or the probe the
    command's own path)."""
    base = (task.test_cmd or "").strip() or "python -m pytest"
    words = shlex.split(base)
    own = next((i for i, word in enumerate(words) if word.startswith("PYTHONPATH=")
                and all("=" in w and w.split("=", 1)[0].isidentifier() for w in words[:i])), None)
    if own is None:
        command = f"{variable}={shlex.quote(value)} PYTHONPATH={shlex.quote(probe_dir)} {base}"
    else:
        words[own] = f"PYTHONPATH={probe_dir}:{words[own].split('=', 1)[1]}"
        command = f"{variable}={shlex.quote(value)} {shlex.join(words)}"
    return task.model_copy(update={"test_cmd": f"{command} -p {PROBE_MODULE}"})


def _install_probe(env) -> str:
    probe_dir = f"/tmp/swerve-probe-{new_nonce()}"
    env.write_file(f"{probe_dir}/{PROBE_MODULE}.py", Path(__file__).with_name("call_probe.py").read_text())
    return probe_dir


def map_calls(env, task, *, timeout: float, bytecode_cache: str = "", server=None) -> CallMap:
    """Run the whole suite once with the probe and read which test started what
    (`bytecode_cache`, `server`: see hidden_tests.run_pytest_on)."""
    probe_dir = _install_probe(env)
    out = f"{probe_dir}/calls.json"
    run = run_pytest_on(env, probe_task(task, probe_dir, "SWERVE_CALL_MAP", out), [], timeout=timeout,
                        bytecode_cache=bytecode_cache, server=server)
    if run.timed_out:
        raise CallMapError(f"the traced suite did not finish within {timeout:.0f}s")
    try:
        text = env.read_file(out)
    except (FileNotFoundError, OSError):
        raise CallMapError(f"the traced suite wrote no call map ({run.error or f'pytest exited {run.exit_code}'})") from None
    finally:
        env.exec(f"rm -rf {shlex.quote(probe_dir)}", timeout=60)
    return parse_call_map(text)


def run_selected(env, task, tests: list[str], *, timeout: float, bytecode_cache: str = "",
                 server=None) -> TestRun:
    """Run only `tests` (node ids): their files are the targets, the probe deselects the rest
    (`server`: see hidden_tests.run_pytest_on)."""
    probe_dir = _install_probe(env)
    selection = f"{probe_dir}/selected.txt"
    try:
        env.write_file(selection, "".join(f"{test}\n" for test in tests))
        files = list(dict.fromkeys(test.split("::", 1)[0] for test in tests))
        return run_pytest_on(env, probe_task(task, probe_dir, "SWERVE_SELECT", selection), files, timeout=timeout,
                             bytecode_cache=bytecode_cache, server=server)
    finally:  # local and scratch environments write it to the host's /tmp, once per candidate
        env.exec(f"rm -rf {shlex.quote(probe_dir)}", timeout=60)
