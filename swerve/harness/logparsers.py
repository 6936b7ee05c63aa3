"""Turn test-runner output into {test name: TestStatus}.

JUnit XML (written by pytest outside the repository) is the primary source; the
stdout parsers exist for runners without JUnit output (Django's runtests.py,
sympy's bin/test, unittest) and for SWE-bench 5.x rows whose eval script names
its own log parser. Test names follow SWE-bench's conventions: pytest node ids
(`tests/test_x.py::TestC::test_y[param]`), Django's `test_y (module.Class)`,
sympy's bare function names.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

from swerve.schema import TestStatus

StatusMap = dict[str, TestStatus]

_STATUS_WORDS = tuple(status.value for status in TestStatus)
_ANSI = re.compile(r"\x1b\[[0-9;]*m|\[(\d+)m")
_SKIP_SUMMARY_COUNT = re.compile(r"^\[\d+\]$")


class JUnitFormatError(ValueError):
    """The JUnit file is not XML we can read (truncated, forged, empty)."""


def junit_node_id(case: ET.Element) -> str:
    """Rebuild a pytest node id from a <testcase>.

    pytest writes classname = node id with '/' -> '.', '.py' dropped and '::' -> '.';
    with junit_family=xunit1 it also writes `file`, which tells where the module
    path ends and the class path begins.
    """
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file")
    if file and file.endswith(".py"):
        module = file[:-3].replace("/", ".")
        if classname == module:
            return f"{file}::{name}"
        if classname.startswith(module + "."):
            classes = classname[len(module) + 1 :].split(".")
            return "::".join([file, *classes, name])
    if not classname:
        return name
    parts = classname.split(".")
    split = next((i for i, part in enumerate(parts) if part[:1].isupper()), len(parts))
    path = "/".join(parts[:split]) + ".py"
    return "::".join([path, *parts[split:], name])


def _case_status(case: ET.Element) -> TestStatus:
    children = {child.tag for child in case}
    if "failure" in children:
        return TestStatus.FAILED
    if "error" in children:
        return TestStatus.ERROR
    skipped = case.find("skipped")
    if skipped is not None:
        kind = (skipped.get("type") or "") + " " + (skipped.get("message") or "")
        return TestStatus.XFAIL if "xfail" in kind.lower() else TestStatus.SKIPPED
    return TestStatus.PASSED


def parse_junit_xml(text: str) -> StatusMap:
    """Statuses from a JUnit XML document (pytest's flavour, either junit family).

    A test reported twice (a call failure plus a teardown error) keeps the worse
    status, so a passing call cannot mask an erroring teardown.
    """
    if not text.strip():
        raise JUnitFormatError("empty JUnit XML")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise JUnitFormatError(f"unreadable JUnit XML ({exc})") from exc
    statuses: StatusMap = {}
    for case in root.iter("testcase"):
        test = junit_node_id(case)
        status = _case_status(case)
        previous = statuses.get(test)
        if previous is None or _RANK[status] > _RANK[previous]:
            statuses[test] = status
    return statuses


def _strip_ansi(line: str) -> str:
    return _ANSI.sub("", line)


_RANK = {TestStatus.PASSED: 0, TestStatus.XFAIL: 0, TestStatus.SKIPPED: 1, TestStatus.FAILED: 2, TestStatus.ERROR: 3}


def _pytest_lines(log: str):
    """(test id, status) for each status line of pytest's output, in order."""
    for raw in log.splitlines():
        line = _strip_ansi(raw).rstrip()
        if line.startswith(_STATUS_WORDS):
            word, _, rest = line.partition(" ")
            if word not in _STATUS_WORDS:
                continue
            rest = rest.strip()
            if word != "PASSED":
                rest = rest.split(" - ", 1)[0].strip()
            name = rest if word == "PASSED" or "::" in rest else (rest.split()[0] if rest else "")
            if not name or (word == "SKIPPED" and _SKIP_SUMMARY_COUNT.match(name)):
                continue
            yield name, TestStatus(word)
            continue
        match = re.match(r"^(\S+::\S.*?) (PASSED|FAILED|SKIPPED|ERROR|XFAIL)(?:\s+\[\s*\d+%\])?$", line)
        if match:
            yield match.group(1), TestStatus(match.group(2))


def parse_pytest_summary(log: str) -> StatusMap:
    """pytest's `-rA` short test summary: `PASSED tests/x.py::test_y`, `FAILED id - msg`,
    and the verbose progress form (`tests/x.py::test_y PASSED [ 50%]`).

    A parametrised id may hold spaces (`test_p[a b]`); the whole id is kept, where
    SWE-bench's parser cuts it at the first space (grading accepts both). When one
    test is reported with different outcomes (a teardown error after a pass, or a
    forged `PASSED` line printed after the real summary) the worse outcome wins.
    """
    statuses: StatusMap = {}
    for name, status in _pytest_lines(log):
        previous = statuses.get(name)
        if previous is None or _RANK[status] > _RANK[previous]:
            statuses[name] = status
    return statuses


def pytest_conflicts(log: str) -> list[str]:
    """Tests that the output reports both as passing and as not passing."""
    seen: dict[str, set[bool]] = {}
    for name, status in _pytest_lines(log):
        seen.setdefault(name, set()).add(status.counts_as_pass)
    return sorted(name for name, outcomes in seen.items() if len(outcomes) > 1)


_UNITTEST_RESULT = re.compile(
    r"^(?P<test>\S.*?) \.\.\. (?P<word>ok|OK|FAIL|ERROR|skipped.*|expected failure|unexpected success)\s*$"
)


def parse_unittest_verbose(log: str) -> StatusMap:
    """unittest `-v` (and Django's runner): `test_y (pkg.mod.Class) ... ok`.

    Also honours the `FAIL: test_y (pkg.mod.Class)` / `ERROR:` headers of the
    failure report, and a result word that lands on the next line after output.
    """
    words = {
        "ok": TestStatus.PASSED,
        "OK": TestStatus.PASSED,
        "FAIL": TestStatus.FAILED,
        "ERROR": TestStatus.ERROR,
        "expected failure": TestStatus.XFAIL,
        "unexpected success": TestStatus.FAILED,
    }
    statuses: StatusMap = {}
    pending: str | None = None
    for raw in log.splitlines():
        line = _strip_ansi(raw).strip()
        match = _UNITTEST_RESULT.match(line)
        if match:
            word = match.group("word")
            statuses[match.group("test")] = TestStatus.SKIPPED if word.startswith("skipped") else words[word]
            pending = None
            continue
        if " ... " in line:
            pending = line.split(" ... ", 1)[0]
            continue
        header = re.match(r"^(FAIL|ERROR): (.+)$", line)
        if header:
            statuses[header.group(2).strip()] = TestStatus.FAILED if header.group(1) == "FAIL" else TestStatus.ERROR
            continue
        if pending and line in ("ok", "OK"):
            statuses[pending] = TestStatus.PASSED
            pending = None
    return statuses


def parse_django(log: str) -> StatusMap:
    """Django's runtests.py output: unittest's verbose lines, same names as SWE-bench."""
    return parse_unittest_verbose(log)


_SYMPY_FAILURE_HEADER = re.compile(r"^_+ (\S+\.py):(\S+) _+$")


def parse_sympy(log: str) -> StatusMap:
    """sympy's bin/test: `test_name ok|F|E` per line, and `___ path.py:test_name ___`
    headers in the failure report (which name the test SWE-bench-style as path:test)."""
    statuses: StatusMap = {}
    for raw in log.splitlines():
        line = _strip_ansi(raw).strip()
        header = _SYMPY_FAILURE_HEADER.match(line)
        if header:
            statuses[f"{header.group(1)}:{header.group(2)}"] = TestStatus.FAILED
            continue
        if not line.startswith("test_"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        word = parts[-1]
        if word == "ok":
            statuses[parts[0]] = TestStatus.PASSED
        elif word == "F":
            statuses[parts[0]] = TestStatus.FAILED
        elif word == "E":
            statuses[parts[0]] = TestStatus.ERROR
        elif word in ("s", "skipped"):
            statuses[parts[0]] = TestStatus.SKIPPED
        elif word == "f":
            statuses[parts[0]] = TestStatus.XFAIL
    return statuses


STDOUT_PARSERS: dict[str, Callable[[str], StatusMap]] = {
    "pytest": parse_pytest_summary,
    "unittest": parse_unittest_verbose,
    "django": parse_django,
    "sympy": parse_sympy,
}

_SWEBENCH_PARSER_NAMES = {
    "parse_log_django": "django",
    "parse_log_sympy": "sympy",
}


def parser_for(name: str) -> Callable[[str], StatusMap]:
    """A stdout parser by swerve name or by SWE-bench's `log_parser` name.

    SWE-bench's many pytest variants (parse_log_pytest_v2, _options, per-repo
    aliases) all read pytest's summary; unknown non-Python parsers are refused.
    """
    key = name.strip()
    if key in STDOUT_PARSERS:
        return STDOUT_PARSERS[key]
    if key in _SWEBENCH_PARSER_NAMES:
        return STDOUT_PARSERS[_SWEBENCH_PARSER_NAMES[key]]
    if key.startswith("parse_log_"):
        from_python = _swebench_python_parser(key)
        if from_python is not None:
            return from_python
        delegated = _delegate_to_swebench(key)
        if delegated is not None:
            return delegated
    raise ValueError(f"unknown log parser {name!r}: use one of {', '.join(STDOUT_PARSERS)} or a SWE-bench parser name")


def _swebench_python_parser(name: str) -> Callable[[str], StatusMap] | None:
    """Python SWE-bench parsers that are not plain pytest (seaborn, matplotlib...) map to
    pytest; non-Python ones (jest, cargo...) are not re-implemented here."""
    python_aliases = {
        "parse_log_pytest", "parse_log_pytest_options", "parse_log_pytest_v2", "parse_log_seaborn",
        "parse_log_matplotlib", "parse_log_astroid", "parse_log_flask", "parse_log_marshmallow",
        "parse_log_pvlib", "parse_log_pyvista", "parse_log_sqlfluff", "parse_log_xarray",
        "parse_log_pydicom", "parse_log_requests", "parse_log_pylint", "parse_log_astropy",
        "parse_log_scikit", "parse_log_sphinx",
    }
    if name in python_aliases:
        return parse_pytest_summary
    return None


def _delegate_to_swebench(name: str) -> Callable[[str], StatusMap] | None:
    """Non-Python parsers (jest, cargo, maven...) come from the `swebench` package when
    it is installed; swerve does not re-implement them."""
    try:
        from swebench.harness.log_parsers import PARSER_REGISTRY
    except ImportError:
        return None
    parser = PARSER_REGISTRY.get(name)
    if parser is None:
        return None

    def parse(log: str) -> StatusMap:
        return {test: TestStatus(status) for test, status in parser(log, None).items()}

    return parse


def parser_for_repo(repo: str, default: str = "pytest") -> str:
    """The stdout parser SWE-bench uses for a repository (django and sympy differ)."""
    return {"django/django": "django", "sympy/sympy": "sympy"}.get(repo, default)
