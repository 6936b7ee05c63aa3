"""Agent test material: small git repositories (the calc task) and the scratch backend over them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from swerve.environments.scratch import ScratchEnvironment
from swerve.schema import Task


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = {".gitignore": "__pycache__/\n.pytest_cache/\n", **files}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(root, "init", "-q")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    return root


def scratch_env(root: Path, instance_id: str = "fake__repo-1") -> ScratchEnvironment:
    """The scratch backend (swerve.environments.scratch) over a repository made by
    make_repo / calc_repo: a temporary clone, so `root` itself is never changed."""
    return ScratchEnvironment(root, instance_id=instance_id)


CALC_SOURCE = '''def add(a, b):
    return a - b


def mul(a, b):
    return a * b
'''

CALC_TEST = '''from calc import add, mul


def test_mul():
    assert mul(2, 3) == 6
'''

GOLD_PATCH = '''diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
 
 
 def mul(a, b):
diff --git a/helpers.py b/helpers.py
new file mode 100644
--- /dev/null
+++ b/helpers.py
@@ -0,0 +1,2 @@
+def double(x):
+    return 2 * x
'''

TEST_PATCH = '''diff --git a/test_calc.py b/test_calc.py
--- a/test_calc.py
+++ b/test_calc.py
@@ -3,3 +3,7 @@ from calc import add, mul
 
 def test_mul():
     assert mul(2, 3) == 6
+
+
+def test_add():
+    assert add(2, 3) == 5
'''


def calc_task(instance_id: str = "fake__calc-1", with_tests: bool = True) -> Task:
    """The calc task; without tests the oracle skips its test runs (fast batch tests)."""
    return Task(
        instance_id=instance_id,
        repo="fake/calc",
        patch=GOLD_PATCH,
        test_patch=TEST_PATCH if with_tests else "",
        problem_statement="add(2, 3) returns -1 instead of 5.",
        FAIL_TO_PASS=["test_calc.py::test_add"] if with_tests else [],
        PASS_TO_PASS=["test_calc.py::test_mul"],
        test_cmd=f"{sys.executable} -m pytest -q -p no:cacheprovider",
    )


def calc_repo(root: Path) -> Path:
    return make_repo(root, {"calc.py": CALC_SOURCE, "test_calc.py": CALC_TEST})
