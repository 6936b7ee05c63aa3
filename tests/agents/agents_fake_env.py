"""A small Environment for agent tests: a git repository in a temp dir, commands via
subprocess (cwd persists as the repo root; nothing else does)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from swerve.environments.base import EnvironmentInfo
from swerve.schema import ExecResult, Task


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


class FakeEnvironment:
    def __init__(self, root: Path, instance_id: str = "fake__repo-1") -> None:
        self.root = Path(root)
        self.info = EnvironmentInfo(backend="fake", instance_id=instance_id, workdir=str(self.root),
                                    image="fake-image", image_digest="sha256:fake")
        self.closed = False
        self.commands: list[str] = []

    def _path(self, path: str) -> Path:
        return Path(path) if path.startswith("/") else self.root / path

    def exec(self, cmd: str, timeout: float | None = None) -> ExecResult:
        self.commands.append(cmd)
        started = time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", cmd], cwd=self.root, capture_output=True, text=True,
                                  timeout=timeout, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                                        "HOME": str(self.root),
                                                        "PYTHONDONTWRITEBYTECODE": "1"})
        except subprocess.TimeoutExpired:
            return ExecResult(output="", exit_code=124, timed_out=True, duration_s=time.monotonic() - started)
        output = done.stdout + done.stderr
        return ExecResult(output=output, exit_code=done.returncode, duration_s=time.monotonic() - started,
                          output_bytes=len(output.encode()))

    def read_file(self, path: str) -> str:
        return self._path(path).read_text()

    def write_file(self, path: str, content: str) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    def diff(self) -> str:
        git(self.root, "add", "-A", "-N")
        return git(self.root, "diff", "HEAD")

    def reset(self) -> None:
        git(self.root, "reset", "-q", "--hard")
        git(self.root, "clean", "-qfd")

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "FakeEnvironment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
