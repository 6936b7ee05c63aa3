"""Patch safety checks and test-file detection."""

from __future__ import annotations

import pytest

from swerve.harness.patches import (
    check_patch,
    is_empty_patch,
    is_interpreter_hook,
    is_test_config,
    is_test_path,
    runner_shadow_root,
)
from swerve.harness.patches import test_config_sections as config_sections

GOOD = """diff --git a/pkg/mod.py b/pkg/mod.py
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -1,2 +1,2 @@
--- a removed line that looks like a header
+new
 context
"""


def test_a_good_patch_lists_its_paths():
    check = check_patch(GOOD)
    assert check.ok and check.paths == ["pkg/mod.py"]


@pytest.mark.parametrize("patch,words", [
    (GOOD.replace("a/pkg/mod.py", "a/../mod.py").replace("b/pkg/mod.py", "b/../mod.py"), "climbs out"),
    ("--- /dev/null\n+++ /etc/cron.d/x\n@@ -0,0 +1 @@\n+x\n", "absolute path"),
    ("--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+x\n", "writes into .git"),
    ("diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+../../etc\n\\ No newline at end of file\n", "symlink"),
    ("hello, I fixed it\n", "not a diff"),
    ("diff --git a/x b/x\n--- a/x\n+++ b/x\n", "without any hunk"),
    ("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\nnonsense\n", "unexpected line"),
])
def test_unsafe_or_malformed_patches_are_refused(patch, words):
    check = check_patch(patch)
    assert not check.ok
    assert any(words in problem for problem in check.problems), check.problems


def test_symlink_inside_repo_is_fine():
    patch = "diff --git a/pkg/l b/pkg/l\nnew file mode 120000\n--- /dev/null\n+++ b/pkg/l\n@@ -0,0 +1 @@\n+../README\n\\ No newline at end of file\n"
    assert check_patch(patch).ok


def test_empty_patches():
    assert is_empty_patch(None) and is_empty_patch("") and is_empty_patch("  \n") and not is_empty_patch(GOOD)


@pytest.mark.parametrize("path,expected", [
    ("tests/test_x.py", True), ("pkg/tests/helpers.py", True), ("test/data.json", True), ("conftest.py", True),
    ("pkg/sub/conftest.py", True), ("test_top.py", True), ("pkg/x_test.py", True), ("pytest.ini", True),
    ("pkg/mod.py", False), ("pkg/testing/utils.py", False), ("docs/conf.py", False), ("setup.cfg", False),
])
def test_test_path_detection(path, expected):
    assert is_test_path(path) is expected


@pytest.mark.parametrize("path,root", [
    ("pytest.py", "pytest.py"), ("_pytest/__init__.py", "_pytest"), ("src/_pytest/mark/structures.py", "src/_pytest"),
    ("pluggy/__init__.py", "pluggy"), ("py.py", "py.py"), ("lib/pluggy.cpython-311-x86_64-linux-gnu.so",
                                                             "lib/pluggy.cpython-311-x86_64-linux-gnu.so"),
    ("pytest.ini", None), ("docs/pytest/index.rst", None), ("pkg/mod.py", None), ("pytest_plugin.py", None),
])
def test_runner_shadow_roots(path, root):
    assert runner_shadow_root(path) == root


@pytest.mark.parametrize("path,expected", [
    ("sitecustomize.py", True), ("lib/usercustomize.py", True), ("pkg/evil.pth", True), ("sitecustomize/__init__.py", True),
    ("pkg/mod.py", False), ("customize.py", False),
])
def test_interpreter_hooks(path, expected):
    assert is_interpreter_hook(path) is expected


def test_config_files_compare_only_their_test_sections():
    base = "[metadata]\nname = x\n\n[tool:pytest]\naddopts = -q\n"
    metadata_only = "[metadata]\nname = y\n\n[tool:pytest]\naddopts = -q\n"
    pytest_changed = "[metadata]\nname = x\n\n[tool:pytest]\naddopts = -p evil\n"
    assert is_test_config("setup.cfg") and is_test_config("sub/tox.ini") and is_test_config("pyproject.toml")
    assert config_sections("setup.cfg", base) == config_sections("setup.cfg", metadata_only)
    assert config_sections("setup.cfg", base) != config_sections("setup.cfg", pytest_changed)
    toml = '[project]\nname = "x"\n[tool.pytest.ini_options]\naddopts = "-q"\n'
    assert config_sections("pyproject.toml", toml) == config_sections("pyproject.toml", toml.replace('"x"', '"y"'))
    assert config_sections("pyproject.toml", toml) != config_sections("pyproject.toml", toml.replace('"-q"', '"-p evil"'))
    assert config_sections("setup.cfg", None) == "" != config_sections("setup.cfg", pytest_changed)


@pytest.mark.parametrize("applies", [True, False])
def test_the_staged_patch_file_is_removed_whether_or_not_it_applies(tmp_path, applies):
    """A local or scratch environment's /tmp is the host's, which no reset empties: a staged
    model patch left there outlives the evaluation."""
    import subprocess

    from swerve.environments.scratch import ScratchEnvironment
    from swerve.harness.patches import apply_patch

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("one\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "b"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-" + ("one" if applies else "zzz") + "\n+two\n"
    staged = tmp_path / "staging" / "model.diff"
    env = ScratchEnvironment(repo, instance_id="staged-patch")
    try:
        result = apply_patch(env, patch, workdir=env.info.workdir, patch_file=str(staged))
        assert result.applied is applies
        assert (env.read_file("a.txt") == "two\n") is applies
    finally:
        env.close()
    assert not staged.exists() and not staged.parent.exists()
