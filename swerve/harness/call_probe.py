"""A pytest plugin for the task factory's own runs (never loaded when grading).

The file is written into the mint environment and loaded with `-p swerve_call_probe`;
it needs only the standard library and pytest, and keeps to Python 3.7 syntax.

- `SWERVE_CALL_MAP=PATH`: record which functions each test starts. A trace hook
  (sys.settrace, also for new threads) notes every code object entered, generator
  resumptions included, and returns None so no line of the frame is traced; each test's setup, call and teardown phases are recorded
  apart, and everything entered outside a phase (imports, collection, session hooks)
  goes to "outside". PATH receives JSON: the tests in run order, the functions
  (file relative to the directory pytest started in, the repository; first line) and, per test and phase, the indices of the
  functions it started.
- `SWERVE_SELECT=PATH`: run only the tests whose node ids PATH lists (one a line);
  the others are deselected after collection, so they never reach the results.
"""

import json
import os
import sys
import threading

import pytest

PHASES = ("setup", "call", "teardown")


class _CallMap(object):
    def __init__(self, path):
        self.path = path
        self.outside = set()
        self.current = self.outside
        self.phases = []
        self.order = []

    def trace(self, frame, event, arg):
        if event == "call":
            self.current.add(frame.f_code)
        return None

    def enter(self, nodeid, phase):
        if phase == "setup":
            self.order.append(nodeid)
        self.current = set()
        self.phases.append((nodeid, phase, self.current))

    def leave(self):
        self.current = self.outside

    def write(self, root):
        root = os.path.realpath(root)
        prefix = root.rstrip(os.sep) + os.sep
        places = {}
        functions = []
        indices = {}

        def index(code):
            filename = code.co_filename
            if filename not in places:
                real = os.path.realpath(filename) if filename and not filename.startswith("<") else ""
                places[filename] = real[len(prefix):].replace(os.sep, "/") if real.startswith(prefix) else None
            relative = places[filename]
            if relative is None:
                return None
            key = (relative, code.co_firstlineno)
            if key not in indices:
                indices[key] = len(functions)
                functions.append([relative, code.co_firstlineno])
            return indices[key]

        def indexed(codes):
            return sorted(set(i for i in (index(code) for code in codes) if i is not None))

        tests = {}
        for nodeid, phase, codes in self.phases:
            entry = tests.setdefault(nodeid, {})
            entry[phase] = sorted(set(entry.get(phase, [])) | set(indexed(codes)))
        data = {"root": root, "order": self.order, "functions": functions, "outside": indexed(self.outside),
                "tests": tests}
        with open(self.path, "w") as handle:
            json.dump(data, handle)


_MAP = _CallMap(os.environ["SWERVE_CALL_MAP"]) if os.environ.get("SWERVE_CALL_MAP") else None
if _MAP is not None:
    threading.settrace(_MAP.trace)
    sys.settrace(_MAP.trace)


def _phase(name):
    @pytest.hookimpl(hookwrapper=True)
    def wrapper(item):
        if _MAP is None:
            yield
            return
        _MAP.enter(item.nodeid, name)
        try:
            yield
        finally:
            _MAP.leave()

    return wrapper


pytest_runtest_setup = _phase("setup")
pytest_runtest_call = _phase("call")
pytest_runtest_teardown = _phase("teardown")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    path = os.environ.get("SWERVE_SELECT")
    if not path:
        return
    with open(path) as handle:
        wanted = set(line.rstrip("\n") for line in handle if line.strip())
    kept = [item for item in items if item.nodeid in wanted]
    dropped = [item for item in items if item.nodeid not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _MAP is not None:
        sys.settrace(None)
        threading.settrace(None)
        params = getattr(config, "invocation_params", None)
        _MAP.write(str(params.dir) if params is not None else os.getcwd())
