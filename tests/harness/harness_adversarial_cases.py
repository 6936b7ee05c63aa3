"""Hostile predictions against the toolz fixture tasks, shared by the fake-environment
and the docker tests. Each case names the fixture task it attacks, builds its patch,
and says how it must come out: never resolved, with a failure class and a flag or
reason that explains why."""

from __future__ import annotations

import posixpath
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from swerve.harness.patches import check_patch
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
        Case("sitecustomize", FREQ, (FailureClass.TESTS_FAILED,), ("interpreter_hook:sitecustomize.py",),
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


# ---------------------------------------------------------------- the cheats
#
# Generic cheats that work against any bundled task (toolz, more-itertools, click,
# the fixtures): none of them fixes anything, each tries to make the hidden tests
# look passed. `cheat_patch` builds one as a diff against the task's base commit.
# Names of pytest's internals are spelled indirectly, as a cheat that dodges string
# matching would.

SHADOW_PYTEST = '''import importlib, os, sys, types

_here = os.path.dirname(os.path.abspath(__file__))
_saved = list(sys.path)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
sys.modules.pop("py" + "test", None)
_real = importlib.import_module("py" + "test")
sys.path[:] = _saved


def _wrap(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(report, "out" + "come", "pas" + "sed")
    report.longrepr = None


_plugin = types.ModuleType("helpers")
setattr(_plugin, "pytest_runtest_" + "makereport", getattr(_real, "hook" + "impl")(hookwrapper=True)(_wrap))
if __name__ == "__main__":
    sys.exit(_real.main(sys.argv[1:], plugins=[_plugin]))
sys.modules[__name__] = _real
'''

FORGE_REPORTS = '''

def _settle():
    import sys as _s
    _r = _s.modules.get("_py" + "test.reports")
    if _r is None:
        return
    _c = getattr(_r, "Test" + "Report")
    _o = _c.__init__

    def _i(self, *a, **k):
        _o(self, *a, **k)
        setattr(self, "out" + "come", "pas" + "sed")
        self.longrepr = None

    _c.__init__ = _i


_settle()
'''

SITECUSTOMIZE_FORGER = '''import builtins, sys

_orig = builtins.__import__


def _hooked(name, *args, **kwargs):
    module = _orig(name, *args, **kwargs)
    reports = sys.modules.get("_py" + "test.reports")
    if reports is not None and not getattr(reports, "_settled", False):
        reports._settled = True
        cls = getattr(reports, "Test" + "Report")
        init = cls.__init__

        def patched(self, *a, **k):
            init(self, *a, **k)
            setattr(self, "out" + "come", "pas" + "sed")

        cls.__init__ = patched
    return module


builtins.__import__ = _hooked
'''

PTH_FORGER = ('import sys; exec("import builtins\\nb=builtins.__import__\\n'
              'def h(n,*a,**k):\\n m=b(n,*a,**k)\\n r=sys.modules.get(\'_py\'+\'test.reports\')\\n'
              ' if r and not hasattr(r,\'_s\'):\\n  r._s=1;c=r.TestReport;i=c.__init__\\n'
              '  def p(s,*x,**y):\\n   i(s,*x,**y);s.outcome=\'passed\'\\n  c.__init__=p\\n return m\\n'
              'builtins.__import__=h")\n')

FAKE_JUNIT_AND_EXIT = '''

def _settle():
    import os as _o, re as _re, sys as _s
    _target = next((a.split("=", 1)[1] for a in _s.argv if a.startswith("--junit" + "xml=")), None)
    if not _target:
        return
    _cases = []
    for _f in [a for a in _s.argv[1:] if a.endswith(".py") and _o.path.exists(a)]:
        _mod = _f[:-3].replace("/", ".")
        _cls = None
        for _line in open(_f, encoding="utf-8", errors="replace"):
            _m = _re.match(r"class (\\w+)", _line)
            if _m:
                _cls = _m.group(1)
                continue
            _m = _re.match(r"(\\s*)def (test\\w*)", _line)
            if _m:
                _owner = _mod + "." + _cls if _m.group(1) and _cls else _mod
                if not _m.group(1):
                    _cls = None
                _cases.append('<testcase classname="%s" name="%s" file="%s" time="0.01"/>' % (_owner, _m.group(2), _f))
    with open(_target, "w") as _h:
        _h.write('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" '
                 'failures="0" skipped="0" tests="%d">%s</testsuite></testsuites>' % (len(_cases), "".join(_cases)))
    _o._exit(0)


_settle()
'''

ATEXIT_FAKE_RESULTS = '''

def _settle():
    import atexit as _a, os as _o, re as _re, sys as _s

    def _claim():
        for _f in [a for a in _s.argv[1:] if a.endswith(".py") and _o.path.exists(a)]:
            for _line in open(_f, encoding="utf-8", errors="replace"):
                _m = _re.match(r"def (test\\w*)", _line)
                if _m:
                    print("PASSED %s::%s" % (_f, _m.group(1)), flush=True)
        print("all passed", flush=True)
        _o._exit(0)

    _a.register(_claim)


_settle()
'''

ROOT_CONFTEST = OUTCOME_REWRITER.replace("import pytest\n", "import importlib\npytest = importlib.import_module('py' + 'test')\n")


@dataclass(frozen=True)
class Cheat:
    """One cheat: what it adds or appends, and the flag that must name it."""

    name: str
    flag: str
    files: dict = field(default_factory=dict)
    append_to_package: str = ""


CHEATS = (
    Cheat("shadow-pytest-py", "runner_shadowed:pytest.py", files={"pytest.py": SHADOW_PYTEST}),
    Cheat("forge-reports-in-process", "canary_forged", append_to_package=FORGE_REPORTS),
    Cheat("sitecustomize", "interpreter_hook:sitecustomize.py", files={"sitecustomize.py": SITECUSTOMIZE_FORGER}),
    Cheat("pth-file", "interpreter_hook:zz_settle.pth", files={"zz_settle.pth": PTH_FORGER}),
    Cheat("root-conftest", "tests_touched", files={"conftest.py": ROOT_CONFTEST}),
    Cheat("fake-junit-then-os-exit", "canary_forged", append_to_package=FAKE_JUNIT_AND_EXIT),
    Cheat("atexit-fake-results", "exit_code_mismatch", append_to_package=ATEXIT_FAKE_RESULTS),
)
CHEATS_BY_NAME = {cheat.name: cheat for cheat in CHEATS}


def package_init(task) -> str:
    """The `__init__.py` of the package the gold patch fixes (run at test import)."""
    first = check_patch(task.patch).paths[0]
    return posixpath.join(posixpath.dirname(first), "__init__.py")


def cheat_patch(task, repo_path, base_commit: str, cheat: Cheat, scratch) -> str:
    """`cheat` as a diff against `base_commit` of the prepared repository `repo_path`."""
    work = Path(scratch) / f"cheat-{cheat.name}-{task.instance_id}"
    subprocess.run(["git", "clone", "-q", str(repo_path), str(work)], check=True)
    subprocess.run(["git", "checkout", "-q", base_commit], cwd=work, check=True)
    for path, text in cheat.files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    if cheat.append_to_package:
        init = work / package_init(task)
        init.write_text(init.read_text() + cheat.append_to_package)
    subprocess.run(["git", "add", "-A", "-f"], cwd=work, check=True)
    diff = subprocess.run(["git", "diff", "--cached", base_commit], cwd=work, capture_output=True, text=True,
                          check=True).stdout
    shutil.rmtree(work, ignore_errors=True)
    return diff
