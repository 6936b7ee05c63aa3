"""str_replace_editor on every command, including each error path."""

from __future__ import annotations

from pathlib import Path

import pytest
from agents_fake_env import make_repo, scratch_env

from swerve.agents.editor import StrReplaceEditor
from swerve.environments.scratch import ScratchEnvironment
from swerve.errors import InfraError

SOURCE = "def f():\n    return 1\n\n\ndef g():\n    return 1\n"


@pytest.fixture()
def env(tmp_path):
    root = make_repo(tmp_path / "repo", {"pkg/mod.py": SOURCE, "README": "hello\n"})
    return scratch_env(root)


@pytest.fixture()
def editor(env):
    return StrReplaceEditor(env)


def run(editor, **arguments):
    return editor.run(arguments)


def test_view_file_with_line_numbers(editor):
    result = run(editor, command="view", path="pkg/mod.py")
    assert result.ok
    assert "     1\tdef f():" in result.output
    assert "     6\t    return 1" in result.output


def test_view_range_and_to_end(editor):
    result = run(editor, command="view", path="pkg/mod.py", view_range=[5, -1])
    assert result.ok
    assert "     5\tdef g():" in result.output and "     1\t" not in result.output
    assert "lines 5-6 of 6" in result.output


@pytest.mark.parametrize("view_range, message", [([0, 2], "start 0 is out of range"), ([3, 2], "before its start"),
                                                 ([1, 99], "past the end"), ([9, -1], "start 9 is out of range")])
def test_view_range_errors(editor, view_range, message):
    result = run(editor, command="view", path="pkg/mod.py", view_range=view_range)
    assert not result.ok and message in result.output


def test_view_directory_lists_files(editor, env):
    result = run(editor, command="view", path=".")
    assert result.ok
    assert f"{env.info.workdir}/pkg/mod.py" in result.output
    assert ".git" not in result.output


def test_view_missing_file(editor):
    result = run(editor, command="view", path="nope.py")
    assert not result.ok and "does not exist" in result.output


def test_path_outside_repository_is_refused(editor, tmp_path):
    for path in ("../outside.py", "/etc/passwd", f"{tmp_path}/repo/../x"):
        result = run(editor, command="view", path=path)
        assert not result.ok and "outside the repository" in result.output


def test_absolute_path_inside_repository(editor, env):
    result = run(editor, command="view", path=f"{env.info.workdir}/README")
    assert result.ok and "hello" in result.output


def test_create_and_undo_removes_the_file(editor, env):
    result = run(editor, command="create", path="pkg/new.py", file_text="x = 1\n")
    assert result.ok
    assert (Path(env.info.workdir) / "pkg/new.py").read_text() == "x = 1\n"
    undo = run(editor, command="undo_edit", path="pkg/new.py")
    assert undo.ok and "removed" in undo.output
    assert not (Path(env.info.workdir) / "pkg/new.py").exists()


def test_create_over_existing_file_is_refused(editor, env):
    result = run(editor, command="create", path="README", file_text="overwritten")
    assert not result.ok and "already exists" in result.output
    assert (Path(env.info.workdir) / "README").read_text() == "hello\n"


def test_create_on_a_directory_is_refused(editor):
    result = run(editor, command="create", path="pkg", file_text="x")
    assert not result.ok and "already exists" in result.output


def test_str_replace_unique(editor, env):
    result = run(editor, command="str_replace", path="pkg/mod.py", old_str="def f():\n    return 1",
                 new_str="def f():\n    return 2")
    assert result.ok, result.output
    assert (Path(env.info.workdir) / "pkg/mod.py").read_text().startswith("def f():\n    return 2\n")
    assert "     2\t    return 2" in result.output


def test_str_replace_not_unique_names_the_lines(editor, env):
    result = run(editor, command="str_replace", path="pkg/mod.py", old_str="    return 1", new_str="    return 3")
    assert not result.ok
    assert "appears 2 times" in result.output and "lines 2, 6" in result.output
    assert (Path(env.info.workdir) / "pkg/mod.py").read_text() == SOURCE


def test_str_replace_no_match_and_whitespace_hint(editor):
    missing = run(editor, command="str_replace", path="pkg/mod.py", old_str="return 42", new_str="")
    assert not missing.ok and "does not appear verbatim" in missing.output
    spaced = run(editor, command="str_replace", path="pkg/mod.py", old_str="def g():  ", new_str="")
    assert not spaced.ok and "different surrounding whitespace" in spaced.output


def test_str_replace_empty_or_identical(editor):
    assert "old_str is empty" in run(editor, command="str_replace", path="README", old_str="").output
    same = run(editor, command="str_replace", path="README", old_str="hello", new_str="hello")
    assert not same.ok and "identical" in same.output


def test_str_replace_missing_file_and_directory(editor):
    assert "does not exist" in run(editor, command="str_replace", path="x.py", old_str="a").output
    assert "is a directory" in run(editor, command="str_replace", path="pkg", old_str="a").output


def test_insert_at_top_middle_and_end(editor, env):
    assert run(editor, command="insert", path="README", insert_line=0, new_str="top").ok
    assert run(editor, command="insert", path="README", insert_line=2, new_str="end\n").ok
    assert run(editor, command="insert", path="README", insert_line=1, new_str="a\nb").ok
    assert (Path(env.info.workdir) / "README").read_text() == "top\na\nb\nhello\nend\n"


def test_insert_bad_line_number(editor, env):
    result = run(editor, command="insert", path="README", insert_line=5, new_str="x")
    assert not result.ok and "out of range" in result.output and "0 to 1" in result.output
    negative = run(editor, command="insert", path="README", insert_line=-1, new_str="x")
    assert not negative.ok
    assert "integer" in run(editor, command="insert", path="README", insert_line="two", new_str="x").output
    assert (Path(env.info.workdir) / "README").read_text() == "hello\n"


def test_undo_walks_back_edits_one_by_one(editor, env):
    run(editor, command="str_replace", path="README", old_str="hello", new_str="one")
    run(editor, command="str_replace", path="README", old_str="one", new_str="two")
    assert run(editor, command="undo_edit", path="README").ok
    assert (Path(env.info.workdir) / "README").read_text() == "one\n"
    assert run(editor, command="undo_edit", path="README").ok
    assert (Path(env.info.workdir) / "README").read_text() == "hello\n"
    nothing = run(editor, command="undo_edit", path="README")
    assert not nothing.ok and "no edit" in nothing.output


def test_failed_edit_leaves_nothing_to_undo(editor):
    run(editor, command="str_replace", path="README", old_str="absent", new_str="x")
    assert not run(editor, command="undo_edit", path="README").ok


def test_unknown_command_and_empty_path(editor):
    assert "unknown command" in run(editor, command="delete", path="README").output
    assert "'path' is empty" in run(editor, command="view", path="").output


def test_infra_errors_propagate(env):
    class Broken(ScratchEnvironment):
        def exec(self, cmd, timeout=None):
            raise InfraError("daemon went away")

    with pytest.raises(InfraError):
        StrReplaceEditor(Broken(env.info.workdir, instance_id="broken")).run({"command": "view", "path": "README"})


def test_non_utf8_file(editor, env):
    (Path(env.info.workdir) / "blob.bin").write_bytes(b"\xff\xfe\x00")
    result = run(editor, command="view", path="blob.bin")
    assert not result.ok and "not UTF-8" in result.output
