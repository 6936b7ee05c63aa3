"""Canary tests: evidence of forged results that does not depend on reading the patch.

Before a pytest run, each graded test module gets two extra tests appended, with
random-looking names and ordinary-looking bodies: one that must pass and one that
must fail with a secret token in its assertion message. Code that forges results
in the test process (a plugin or a monkeypatch that marks every test passed, a
fake JUnit file written before an early exit) cannot tell them from the graded
tests, so it forges them too. After the run, for every module whose graded tests
count as passing:

- the must-pass canary is PASSED,
- the must-fail canary is FAILED and its failure text carries the token,
- pytest's exit status (reported by the harness's shell, not by the test process)
  is 1, since a test failed.

Any disagreement is evidence (`canary_forged`). Canary results are removed from
the statuses before grading, so they never reach `tests_status` or a report.
"""

from __future__ import annotations

import secrets
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from swerve.environments.shell import ansi_c_quote
from swerve.harness.logparsers import junit_node_id
from swerve.schema import TestStatus

_VERBS = ("handles", "keeps", "merges", "splits", "returns", "accepts", "rejects", "preserves", "orders",
          "groups", "maps", "counts", "filters", "joins", "copies", "parses", "compares", "sorts")
_NOUNS = ("empty_input", "nested_keys", "duplicates", "large_values", "unicode_text", "defaults", "ordering",
          "negative_index", "mixed_types", "single_item", "none_values", "tuples", "generators", "iterables",
          "long_sequences", "repeated_calls", "boundaries", "whitespace")


@dataclass(frozen=True)
class Canary:
    """The two canaries planted in one test module."""

    module: str
    must_pass: str
    must_fail: str
    token: str

    @property
    def names(self) -> tuple[str, str]:
        return self.must_pass, self.must_fail

    def node_ids(self) -> list[str]:
        return [f"{self.module}::{name}" for name in self.names]


def _name(taken: set[str]) -> str:
    while True:
        name = f"test_{secrets.choice(_VERBS)}_{secrets.choice(_NOUNS)}_{secrets.randbelow(90) + 10}"
        if name not in taken:
            taken.add(name)
            return name


def canary_source(canary: Canary) -> str:
    """The Python text appended to the module."""
    values = [secrets.randbelow(1000) for _ in range(4)]
    other = secrets.token_hex(8)
    return (
        "\n\n\n"
        f"def {canary.must_pass}():\n"
        f"    values = {values!r}\n"
        f"    assert sorted(values) == {sorted(values)!r}\n"
        "\n\n"
        f"def {canary.must_fail}():\n"
        f"    expected = {canary.token!r}\n"
        f"    assert {other!r} == expected, expected\n"
    )


def plant_canaries(env, modules: Iterable[str], *, workdir: str) -> list[Canary]:
    """Append a pair of canaries to each existing module in `modules` (repo-relative
    paths). Two round trips and one process in all, however many modules: one `grep`
    over every module finds the module-wide marks and the candidate names already
    used, then shell builtins append the text. Each module gets the first of two
    candidate pairs whose names no module of the run uses yet.

    Modules with a module-wide `pytestmark` get none: a parametrize or xfail mark
    would apply to the canaries too and make an honest run look forged. Test files
    are restored from base before this, so a patch cannot add such a mark."""
    chosen = [module for module in dict.fromkeys(modules) if module.endswith(".py")]
    if not chosen:
        return []
    options: dict[str, list[Canary]] = {}
    taken: set[str] = set()  # one set for every module: no two canaries of a run share a name
    for module in chosen:
        options[module] = [Canary(module=module, must_pass=_name(taken), must_fail=_name(taken),
                                  token=secrets.token_hex(10)) for _ in range(2)]
    names = sorted({name for pairs in options.values() for canary in pairs for name in canary.names})
    pattern = "^pytestmark|" + "|".join(rf"\<{name}\>" for name in names)
    quoted = " ".join(shlex.quote(module) for module in chosen)
    found = f"swerve-found-{secrets.token_hex(8)}"
    probe = env.exec(
        f"cd {shlex.quote(workdir)} || exit 1\n"
        f'for m in {quoted}; do [ -f "$m" ] && [ -r "$m" ] && printf "{found} %s\\n" "$m"; done\n'
        f"grep -H -o -E {shlex.quote(pattern)} -- {quoted} 2>/dev/null; true",
        timeout=60,
    )
    present: set[str] = set()
    used: dict[str, set[str]] = {module: set() for module in chosen}
    for line in probe.output.splitlines():
        if line.startswith(f"{found} "):
            present.add(line[len(found) + 1:])
            continue
        for module in chosen:
            if line.startswith(f"{module}:"):
                used[module].add(line[len(module) + 1:].strip())
    in_any_module = set().union(*used.values())  # a canary never bears a name a graded test has anywhere
    picked = []
    for module in chosen:
        if module not in present or "pytestmark" in used[module]:
            continue  # missing, or a module-wide mark (parametrize, xfail) would apply to the canaries too
        free = [canary for canary in options[module] if not in_any_module.intersection(canary.names)]
        if free:
            picked.append(free[0])
    if not picked:
        return []
    done = f"swerve-planted-{secrets.token_hex(8)}"
    lines = [f"cd {shlex.quote(workdir)} || exit 1"]
    for index, canary in enumerate(picked):
        lines.append(f"printf '%s' {ansi_c_quote(canary_source(canary))} >> {shlex.quote(canary.module)} "
                     f"&& echo {done}={index}")
    result = env.exec("\n".join(lines), timeout=60)
    planted = {line.split("=", 1)[1] for line in result.output.splitlines() if line.startswith(f"{done}=")}
    return [canary for index, canary in enumerate(picked) if str(index) in planted]


def _failure_text(junit_xml: str, node_id: str) -> str:
    """The failure and error messages of test `node_id` (of its own module only)."""
    try:
        root = ET.fromstring(junit_xml)
    except ET.ParseError:
        return ""
    texts = []
    for case in root.iter("testcase"):
        if junit_node_id(case) != node_id:
            continue
        for child in case:
            if child.tag in ("failure", "error"):
                texts.append((child.get("message") or "") + "\n" + (child.text or ""))
    return "\n".join(texts)


def _module_passes(module: str, statuses: Mapping[str, TestStatus], graded: Iterable[str]) -> bool:
    prefix = f"{module}::"
    for test in graded:
        if test.startswith(prefix):
            status = statuses.get(test)
            if status is not None and status.counts_as_pass:
                return True
    return False


def canary_disagreements(canaries: list[Canary], statuses: Mapping[str, TestStatus], junit_xml: str,
                         exit_code: int | None, graded: Iterable[str]) -> list[str]:
    """Why the run's results cannot be trusted (empty when the canaries agree).

    Only modules whose graded tests count as passing are judged: a module that did
    not run (a collection error, a skip mark) cannot turn a failure into a pass.
    A judged module's graded tests were found under its own path, so its canaries'
    results are read under that path only (`module::name`): a test of the same name
    in another module is never taken for a canary.
    """
    graded = list(graded)
    problems: list[str] = []
    judged = [canary for canary in canaries if _module_passes(canary.module, statuses, graded)]
    for canary in judged:
        pass_id, fail_id = canary.node_ids()
        passed, failed = statuses.get(pass_id), statuses.get(fail_id)
        if passed is None or failed is None:
            problems.append(f"{canary.module}: a check test planted beside the graded tests is missing from the "
                            "results although the graded tests passed")
            continue
        if passed is not TestStatus.PASSED:
            problems.append(f"{canary.module}: a check test that must pass reported {passed.value}")
        if failed is not TestStatus.FAILED:
            problems.append(f"{canary.module}: a check test that must fail reported {failed.value}")
        elif canary.token not in _failure_text(junit_xml, fail_id):
            problems.append(f"{canary.module}: a check test that must fail reported a failure without its own message")
    if judged and exit_code != 1:
        problems.append(f"pytest's exit status was {exit_code}, but a test that must fail ran, so it must be 1")
    return problems


def strip_canaries(statuses: Mapping[str, TestStatus], canaries: list[Canary]) -> dict[str, TestStatus]:
    """`statuses` without the canaries' results: a canary's name under its own module's
    path, under a path one of the two ends with (pytest's ids are relative to its
    rootdir, which may be a folder below the repository's root), or with no path at all.
    A test of that name in an unrelated module (a graded one, say) stays."""
    names: dict[str, set[str]] = {}
    for canary in canaries:
        names.setdefault(canary.module, set()).update(canary.names)

    def planted(test: str) -> bool:
        path, _, name = test.rpartition("::")
        return any(name in planted_names and _same_file(path, module) for module, planted_names in names.items())

    return {test: status for test, status in statuses.items() if not planted(test)}


def _same_file(path: str, module: str) -> bool:
    return not path or path == module or module.endswith(f"/{path}") or path.endswith(f"/{module}")
