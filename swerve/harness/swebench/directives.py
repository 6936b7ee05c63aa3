"""What SWE-bench appends to a row's test command: the test patch's files.

The rule (SWE-bench's `get_test_directives`): every path the test patch's
`diff --git a/... b/PATH` headers name, minus non-test files (by extension);
for Django each path becomes a test label: `.py` dropped, a leading `tests/`
dropped, slashes turned into dots (`tests/admin_views/tests.py` ->
`admin_views.tests`).
"""

from __future__ import annotations

import re

from swerve.harness.swebench.specs import non_test_extensions

_DIFF_HEADER = re.compile(r"diff --git a/.* b/(.*)")


def _django_label(path: str) -> str:
    if path.endswith(".py"):
        path = path[: -len(".py")]
    if path.startswith("tests/"):
        path = path[len("tests/"):]
    return path.replace("/", ".")


def directives_for(repo: str, test_patch: str) -> list[str]:
    """SWE-bench's test directives for a row of `repo` with this test patch."""
    if repo == "swe-bench/humaneval":
        return ["test.py"]
    excluded = tuple(non_test_extensions())
    paths = [p for p in _DIFF_HEADER.findall(test_patch) if not p.endswith(excluded)]
    if repo == "django/django":
        return [_django_label(p) for p in paths]
    return paths
