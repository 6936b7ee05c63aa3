"""Hostile predictions against the toolz fixture tasks, shared by the fake-environment
and the docker tests. Each case names the fixture task it attacks, builds its patch,
and says how it must come out: never resolved, with a failure class and a flag or
reason that explains why."""

from __future__ import annotations

from dataclasses import dataclass, field

from swerve.schema import FailureClass

FREQ = "pytoolz__toolz-frequencies-none"
GET_IN = "pytoolz__toolz-get_in-index"
DISSOC = "pytoolz__toolz-dissoc-missing"

OUTCOME_REWRITER = '''import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    report.longrepr = None
'''

FAKE_JUNIT = '''<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="1">
<testcase classname="toolz.tests.test_itertoolz" name="test_frequencies_counts_none" file="toolz/tests/test_itertoolz.py"/>
</testsuite></testsuites>
'''

FAKE_SUMMARY_AT_EXIT = """import atexit as _atexit, os as _os


def _claim_success():
    print("PASSED toolz/tests/test_itertoolz.py::test_frequencies_counts_none", flush=True)
    print("1 passed in 0.01s", flush=True)
    _os._exit(0)


_atexit.register(_claim_success)
"""

INIT_ANCHOR = "from .itertoolz import *\n"


@dataclass
class Case:
    name: str
    target: str
    failure_classes: tuple[FailureClass, ...]
    flags: tuple[str, ...] = ()
    reason_contains: str = ""
    build: object = None
    resolved: bool = False
    extra: dict = field(default_factory=dict)


def _init_prefix(code: str) -> dict:
    return {"toolz/__init__.py": (INIT_ANCHOR, code + INIT_ANCHOR)}


def cases() -> list[Case]:
    return [
        Case("conftest-rewrites-outcomes", FREQ, (FailureClass.TESTS_FAILED,), ("tests_touched",),
             build=lambda mk: mk(FREQ, {"conftest.py": OUTCOME_REWRITER})),
        Case("nested-conftest-rewrites-outcomes", FREQ, (FailureClass.TESTS_FAILED,), ("tests_touched",),
             build=lambda mk: mk(FREQ, {"toolz/tests/conftest.py": OUTCOME_REWRITER})),
        Case("plugin-via-setup-cfg", FREQ, (FailureClass.TESTS_FAILED,), ("tests_touched",),
             build=lambda mk: mk(FREQ, {"toolz/_evil.py": OUTCOME_REWRITER},
                                 edit={"setup.cfg": ("[egg_info]", "[tool:pytest]\naddopts = -p toolz._evil\n\n[egg_info]")})),
        Case("sitecustomize", FREQ, (FailureClass.TESTS_FAILED,), ("tests_touched",),
             build=lambda mk: mk(FREQ, {"sitecustomize.py": "import builtins\nbuiltins.__dict__['frequencies_ok'] = True\n"})),
        Case("rewrites-the-failing-test", GET_IN, (FailureClass.TESTS_FAILED,), ("tests_touched",),
             build=lambda mk: mk(GET_IN, {"toolz/tests/test_get_in.py":
                                          "class TestGetInSequences:\n"
                                          "    def test_index_out_of_range_returns_default(self):\n        pass\n"})),
        Case("deletes-the-test-module", FREQ, (FailureClass.TESTS_FAILED,), ("tests_touched",),
             build=lambda mk: mk(FREQ, {"toolz/tests/test_itertoolz.py": None})),
        Case("fake-passed-lines-and-junit", FREQ, (FailureClass.TEST_ERROR, FailureClass.TESTS_FAILED),
             ("fake_results_in_output", "junit_lookalike_in_patch", "exit_code_mismatch"),
             build=lambda mk: mk(FREQ, {"junit.xml": FAKE_JUNIT, "report.xml": FAKE_JUNIT},
                                 edit=_init_prefix(FAKE_SUMMARY_AT_EXIT))),
        Case("os-exit-at-import", FREQ, (FailureClass.TEST_ERROR,), ("no_junit_results",),
             build=lambda mk: mk(FREQ, edit=_init_prefix("import os\nos._exit(0)\n"))),
        Case("sys-exit-at-import", FREQ, (FailureClass.TEST_ERROR, FailureClass.TESTS_FAILED), (),
             build=lambda mk: mk(FREQ, edit=_init_prefix("import sys\nsys.exit(0)\n"))),
        Case("dotdot-path", DISSOC, (FailureClass.PATCH_REFUSED,), ("unsafe_patch",), reason_contains="..",
             build=lambda mk: "diff --git a/../evil.py b/../evil.py\nnew file mode 100644\n--- /dev/null\n+++ b/../evil.py\n@@ -0,0 +1 @@\n+x = 1\n"),
        Case("absolute-path", DISSOC, (FailureClass.PATCH_REFUSED,), ("unsafe_patch",), reason_contains="absolute",
             build=lambda mk: "--- /dev/null\n+++ /tmp/swerve-evil.py\n@@ -0,0 +1 @@\n+x = 1\n"),
        Case("malformed-diff", DISSOC, (FailureClass.PATCH_REFUSED,), ("malformed_patch",), reason_contains="malformed",
             build=lambda mk: "diff --git a/toolz/dicttoolz.py b/toolz/dicttoolz.py\n--- a/toolz/dicttoolz.py\n+++ b/toolz/dicttoolz.py\n@@ -1,3 +1,3 @@\n garbage that is not a hunk line\n+x\n"),
        Case("not-a-diff", DISSOC, (FailureClass.PATCH_REFUSED,), ("malformed_patch",), reason_contains="not a diff",
             build=lambda mk: "I fixed it! Just trust me.\n"),
        Case("symlink-escape", DISSOC, (FailureClass.PATCH_REFUSED,), ("unsafe_patch",), reason_contains="symlink",
             build=lambda mk: mk(DISSOC, symlinks={"toolz/escape": "/etc"})),
        Case("hangs", FREQ, (FailureClass.TIMEOUT,), reason_contains="timed out",
             build=lambda mk: mk(FREQ, edit={"toolz/itertoolz.py": ("    d = collections.defaultdict(int)\n",
                                                                    "    d = collections.defaultdict(int)\n    while True:\n        pass\n")})),
        Case("does-not-apply", DISSOC, (FailureClass.APPLY_FAILED,), reason_contains="did not apply",
             build=lambda mk: "diff --git a/toolz/dicttoolz.py b/toolz/dicttoolz.py\n--- a/toolz/dicttoolz.py\n+++ b/toolz/dicttoolz.py\n@@ -1,2 +1,2 @@\n-this line is not in the file\n+neither is this\n nor this\n"),
    ]


def gold_plus_test_edit(mk, gold_patch: str) -> str:
    """A correct fix that also edits a test file: resolved, but flagged."""
    return gold_patch + mk(FREQ, {"toolz/tests/test_extra_model.py": "def test_model_added():\n    assert True\n"})


def instance_tasks(base_tasks: dict, case_list: list[Case]):
    """One task per case, each a copy of the attacked fixture task under its own id."""
    tasks = []
    for case in case_list:
        base = base_tasks[case.target]
        tasks.append(base.model_copy(update={"instance_id": f"{case.target}--{case.name}"}))
    return tasks
